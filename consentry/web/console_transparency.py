"""The console's pages for answering regulators, for compliance and administrators: the
transparency report for a period (charts as server-drawn SVG images, downloads as HTML,
CSV and JSON), the incident pack's summary and the pack itself, and the register of
regulator requests with their countdowns (only administrators change it)."""

from __future__ import annotations

import hashlib
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from consentry.audit.checkpoints import signer_for
from consentry.errors import InvalidRequest, NotFound
from consentry.http.bodies import read_form
from consentry.http.deps import GateDep, SettingsDep, check_csrf, require_roles
from consentry.people import LiveSession, Role
from consentry.reporting.documents import (
    transparency_body,
    transparency_charts,
    transparency_csv,
    transparency_html,
    transparency_json,
)
from consentry.reporting.incident import (
    IncidentScope,
    build_incident,
    incident_chart,
    summary_body,
    write_pack,
)
from consentry.reporting.regulator_requests import STATUSES, RegulatorRegister
from consentry.reporting.transparency import SURFACES, Period, transparency_report_for
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

Reader = Annotated[LiveSession, require_roles(Role.COMPLIANCE, Role.ADMIN)]
Admin = Annotated[LiveSession, require_roles(Role.ADMIN)]
SVG = "image/svg+xml"


def _period(request: Request, days: int = 7) -> Period:
    """The period the query names (``from``, ``to``: dates or ISO times), by default the
    last ``days`` whole days."""
    start, end = request.query_params.get("from"), request.query_params.get("to")
    if not start or not end:
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return Period(today - timedelta(days=days - 1), today + timedelta(days=1))
    return Period.parse(start, end)


def _scope(request: Request) -> IncidentScope:
    q = request.query_params
    return IncidentScope(_period(request, days=2), clause=q.get("clause") or None,
                         surface=q.get("surface") or None)


def _query(scope: IncidentScope | Period) -> str:
    period = scope.period if isinstance(scope, IncidentScope) else scope
    values = {"from": period.start.isoformat(), "to": period.end.isoformat()}
    if isinstance(scope, IncidentScope):
        values.update({k: v for k, v in (("clause", scope.clause),
                                         ("surface", scope.surface)) if v})
    return urlencode(values)


def _invalid(request: Request, user: LiveSession, exc: InvalidRequest) -> HTMLResponse:
    return console_page(request, "error.html", user, title="Check the period",
                        status_code=422, message=str(exc))


@router.get("/transparency", response_class=HTMLResponse)
async def transparency(request: Request, user: Reader, gate: GateDep) -> HTMLResponse:
    try:
        period = _period(request)
    except InvalidRequest as exc:
        return _invalid(request, user, exc)
    report = await run_in_threadpool(transparency_report_for, gate.db, period, gate.settings)
    query = _query(period)

    def chart(name: str) -> Markup:
        return Markup('<figure><img src="/console/transparency/chart?name={}&amp;{}" '
                      'alt="Chart: {} (the figures are in the table)"></figure>').format(
                          name, Markup(query.replace("&", "&amp;")), name)

    return console_page(request, "transparency.html", user, title="Transparency report",
                        report=report, period=period, query=query,
                        body=transparency_body(report, chart))


@router.get("/transparency/chart")
async def transparency_chart(request: Request, user: Reader, gate: GateDep) -> Response:
    name = request.query_params.get("name", "")
    report = await run_in_threadpool(transparency_report_for, gate.db, _period(request),
                                     gate.settings)
    charts = await run_in_threadpool(transparency_charts, report)
    if name not in charts:
        raise NotFound("no such chart", code="no_such_chart")
    return Response(charts[name], media_type=SVG)


@router.get("/transparency/download")
async def transparency_download(request: Request, user: Reader, gate: GateDep) -> Response:
    kind = request.query_params.get("format", "html")
    render = {"html": (transparency_html, "text/html; charset=utf-8"),
              "csv": (transparency_csv, "text/csv; charset=utf-8"),
              "json": (transparency_json, "application/json")}.get(kind)
    if render is None:
        raise NotFound("no such format", code="no_such_format")
    period = _period(request)
    report = await run_in_threadpool(transparency_report_for, gate.db, period, gate.settings)
    text = await run_in_threadpool(render[0], report)
    name = f"transparency-{period.start.date()}-{period.end.date()}.{kind}"
    return _download(name, text, render[1])


@router.get("/incident", response_class=HTMLResponse)
async def incident(request: Request, user: Reader, gate: GateDep,
                   settings: SettingsDep) -> HTMLResponse:
    try:
        scope = _scope(request)
    except InvalidRequest as exc:
        return _invalid(request, user, exc)
    built = await run_in_threadpool(build_incident, signer_for(gate.db, settings), scope)
    query = _query(scope)
    chart = Markup('<img src="/console/incident/chart?{}" alt="Chart: volumes per hour '
                   '(the figures are in the pack\'s timeline.csv)">').format(
                       Markup(query.replace("&", "&amp;")))
    return console_page(request, "incident.html", user, title="Incident pack",
                        incident=built, scope=scope, query=query, surfaces=SURFACES,
                        body=Markup(summary_body(built, chart)))


@router.get("/incident/chart")
async def incident_timeline(request: Request, user: Reader, gate: GateDep,
                            settings: SettingsDep) -> Response:
    built = await run_in_threadpool(build_incident, signer_for(gate.db, settings),
                                    _scope(request))
    return Response(await run_in_threadpool(incident_chart, built), media_type=SVG)


async def _pack(gate: GateDep, settings: SettingsDep, scope: IncidentScope
                ) -> tuple[str, bytes]:
    built = await run_in_threadpool(build_incident, signer_for(gate.db, settings), scope)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "incident-pack.zip"
        await run_in_threadpool(write_pack, built, out)
        data = out.read_bytes()
    return f"incident-pack-{scope.period.start.date()}-{scope.period.end.date()}.zip", data


def _download(name: str, data: bytes | str, media_type: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@router.get("/incident/pack")
async def incident_pack(request: Request, user: Reader, gate: GateDep,
                        settings: SettingsDep) -> Response:
    name, data = await _pack(gate, settings, _scope(request))
    return _download(name, data, "application/zip")


# -- the register -------------------------------------------------------------------------


def _actor(user: LiveSession) -> str:
    return f"user:{user.person.id}:{user.person.username}"


async def _requests_page(request: Request, user: LiveSession, register: RegulatorRegister,
                         *, errors: list[dict[str, str]] | None = None,
                         form: dict[str, str] | None = None,
                         status_code: int = 200) -> HTMLResponse:
    listed = await run_in_threadpool(register.requests)
    return console_page(request, "requests.html", user, title="Regulator requests",
                        status_code=status_code, requests=listed, now=register.now(),
                        may_change=Role.ADMIN in user.person.roles, statuses=STATUSES,
                        errors=errors or [], form=form or {})


@router.get("/requests", response_class=HTMLResponse)
async def requests(request: Request, user: Reader, gate: GateDep) -> HTMLResponse:
    return await _requests_page(request, user, RegulatorRegister(gate.db))


@router.post("/requests", response_class=HTMLResponse)
async def record_request(request: Request, user: Admin, gate: GateDep) -> Response:
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=12)
    fields = ("regulator", "reference", "legal_basis", "questions", "deadline")
    values = {k: str(form.get(k, "")).strip() for k in fields}
    register = RegulatorRegister(gate.db)
    try:
        try:
            deadline = datetime.fromisoformat(values["deadline"])
        except ValueError:
            raise InvalidRequest("invalid_deadline", "give the deadline as a date and time",
                                 field="deadline") from None
        deadline = deadline.replace(tzinfo=UTC) if deadline.tzinfo is None else deadline
        await run_in_threadpool(lambda: register.record(
            regulator=values["regulator"], reference=values["reference"],
            legal_basis=values["legal_basis"], questions=values["questions"],
            deadline=deadline, actor=_actor(user)))
    except InvalidRequest as exc:
        message = str(exc)
        return await _requests_page(request, user, register, status_code=422, form=values,
                                    errors=[{"anchor": exc.field or "regulator",
                                             "message": message[:1].upper() + message[1:]}])
    return RedirectResponse("/console/requests", status_code=303)


@router.post("/requests/{id:int}/status")
async def request_status(request: Request, request_id: Annotated[int, PathParam(alias="id")],
                         user: Admin, gate: GateDep) -> Response:
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=5)
    status = str(form.get("status", ""))
    await run_in_threadpool(RegulatorRegister(gate.db).set_status, request_id, status,
                            actor=_actor(user))
    return RedirectResponse("/console/requests", status_code=303)


@router.post("/requests/{id:int}/attach")
async def request_attach(request: Request, request_id: Annotated[int, PathParam(alias="id")],
                         user: Admin, gate: GateDep, settings: SettingsDep) -> Response:
    """Produce an incident pack or a transparency report for the request's period, record
    it (name and SHA-256) against the request, and hand it over as a download."""
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=8)
    register = RegulatorRegister(gate.db)
    values = {k: str(form.get(k, "")).strip() for k in ("kind", "from", "to")}
    try:
        period = Period.parse(values["from"], values["to"])
        if values["kind"] == "incident_pack":
            name, data = await _pack(gate, settings, IncidentScope(period))
            media = "application/zip"
        elif values["kind"] == "transparency_report":
            report = await run_in_threadpool(transparency_report_for, gate.db, period,
                                             gate.settings)
            text = await run_in_threadpool(transparency_html, report)
            name, data = (f"transparency-{period.start.date()}-{period.end.date()}.html",
                          text.encode())
            media = "text/html; charset=utf-8"
        else:
            raise InvalidRequest("invalid_kind", "attach an incident pack or a transparency "
                                 "report", field="kind")
        await run_in_threadpool(lambda: register.attach_digest(
            request_id, name, hashlib.sha256(data).hexdigest(), kind=values["kind"],
            actor=_actor(user), period_from=period.start, period_to=period.end))
    except InvalidRequest as exc:
        message = str(exc)
        return await _requests_page(request, user, register, status_code=422,
                                    errors=[{"anchor": f"attach-{request_id}",
                                             "message": message[:1].upper() + message[1:]}])
    return _download(name, data, media)
