"""The console's law-enforcement pages, for child-safety reviewers and admins only: the
preservation and disclosure requests with their deadlines, the form that records one (and
places the hold it asks for), and the disclosure package of one, made on demand and handed
to the browser as a download. The passphrase that encrypts it is read from the form and
passed on; it is never stored, logged or written back into a page. The work is the
service's (``reporting.law_enforcement``), as for the CLI."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consentry.errors import InvalidRequest
from consentry.http.bodies import read_form
from consentry.http.deps import LawEnforcementDep, check_csrf, require_roles
from consentry.people import LiveSession, Role
from consentry.reporting.law_enforcement import KINDS, MIN_PASSPHRASE, LawEnforcementDesk
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

ChildSafety = Annotated[LiveSession, require_roles(Role.CHILD_SAFETY, Role.ADMIN)]
FIELDS: Final = ("kind", "agency", "reference", "legal_basis", "account", "deadline")


def _actor(user: LiveSession) -> str:
    return f"user:{user.person.id}:{user.person.username}"


def _error(exc: InvalidRequest, anchor: str | None = None) -> list[dict[str, str]]:
    message = str(exc)
    return [{"anchor": anchor or exc.field or "agency",
             "message": message[:1].upper() + message[1:] + "."}]


def countdown(deadline: datetime | None, now: datetime) -> str:
    """How long is left before a deadline, in whole days, as a person reads it."""
    if deadline is None:
        return "no deadline"
    left = deadline - now
    if left < timedelta(0):
        days = (-left).days
        return "overdue" if days == 0 else f"overdue by {days} day{'s' if days != 1 else ''}"
    days = left.days
    return "due today" if days == 0 else f"due in {days} day{'s' if days != 1 else ''}"


def parse_deadline(value: str) -> datetime | None:
    """A date from the form (YYYY-MM-DD), as the end of that day in UTC; None if blank."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest("invalid_deadline", "give the deadline as a date "
                             "(YYYY-MM-DD)", field="deadline") from exc
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


async def _list(request: Request, user: LiveSession, desk: LawEnforcementDesk, *,
                errors: list[dict[str, str]] | None = None,
                form: dict[str, str] | None = None, status_code: int = 200) -> HTMLResponse:
    listed = await run_in_threadpool(desk.requests)
    now = desk.now()
    return console_page(request, "law_enforcement.html", user,
                        title="Law-enforcement requests", status_code=status_code,
                        requests=[(r, countdown(r.deadline, now)) for r in reversed(listed)],
                        kinds=KINDS, errors=errors or [], form=form or {})


@router.get("/law-enforcement", response_class=HTMLResponse)
async def requests(request: Request, user: ChildSafety, desk: LawEnforcementDep) -> HTMLResponse:
    return await _list(request, user, desk)


@router.post("/law-enforcement", response_class=HTMLResponse)
async def record(request: Request, user: ChildSafety, desk: LawEnforcementDep) -> Response:
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=20)
    values = {k: str(form.get(k, "")).strip() for k in FIELDS}
    try:
        deadline = parse_deadline(values["deadline"])
        found = await run_in_threadpool(
            desk.record, kind=values["kind"], agency=values["agency"],
            reference=values["reference"], legal_basis=values["legal_basis"],
            account_id=values["account"], deadline=deadline, actor=_actor(user))
    except InvalidRequest as exc:
        return await _list(request, user, desk, status_code=422, form=values,
                           errors=_error(exc))
    return RedirectResponse(f"/console/law-enforcement/{found.id}", status_code=303)


async def _page(request: Request, request_id: int, user: LiveSession,
                desk: LawEnforcementDesk, *, errors: list[dict[str, str]] | None = None,
                status_code: int = 200) -> HTMLResponse:
    found = await run_in_threadpool(desk.request, request_id)
    return console_page(request, "law_enforcement_request.html", user,
                        title=f"Request {request_id}", status_code=status_code, le=found,
                        countdown=countdown(found.deadline, desk.now()),
                        min_passphrase=MIN_PASSPHRASE, errors=errors or [])


@router.get("/law-enforcement/{request_id:int}", response_class=HTMLResponse)
async def request_page(request: Request, request_id: int, user: ChildSafety,
                       desk: LawEnforcementDep) -> HTMLResponse:
    return await _page(request, request_id, user, desk)


@router.post("/law-enforcement/{request_id:int}/disclose", response_class=HTMLResponse)
async def disclose(request: Request, request_id: int, user: ChildSafety,
                   desk: LawEnforcementDep) -> Response:
    """The encrypted package as a download; the passphrase is used and forgotten."""
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=20)
    passphrase = form.get("passphrase")
    try:
        sealed, digest = await run_in_threadpool(
            desk.package, request_id,
            passphrase=passphrase if isinstance(passphrase, str) else "",
            actor=_actor(user))
    except InvalidRequest as exc:
        return await _page(request, request_id, user, desk, status_code=422,
                           errors=_error(exc, "passphrase"))
    return Response(sealed, media_type="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="disclosure-{request_id}.pkg"',
        "Cache-Control": "no-store", "X-Package-SHA256": digest})
