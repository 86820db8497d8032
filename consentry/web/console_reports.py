"""The console's CyberTipline pages, for child-safety reviewers and admins only: the
reports drafted from sealed CS-1/KM-1 evidence (items listed by check, clause and hash;
never their media), and the confirmation that lets one be sent, with the industry
classification and a rationale. Sending is the worker's (``reporting.cybertip_desk``)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consentry.errors import InvalidRequest
from consentry.http.bodies import read_form
from consentry.http.deps import CyberTipDep, check_csrf, require_roles
from consentry.people import LiveSession, Role
from consentry.reporting.cybertipline import IndustryClassification
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

ChildSafety = Annotated[LiveSession, require_roles(Role.CHILD_SAFETY, Role.ADMIN)]
CLASSIFICATIONS: Final = (
    (IndustryClassification.A1.value, "A1: prepubescent, a sex act"),
    (IndustryClassification.A2.value, "A2: prepubescent, a lascivious exhibition"),
    (IndustryClassification.B1.value, "B1: pubescent, a sex act"),
    (IndustryClassification.B2.value, "B2: pubescent, a lascivious exhibition"),
)


@router.get("/reports", response_class=HTMLResponse)
async def reports(request: Request, user: ChildSafety, desk: CyberTipDep) -> HTMLResponse:
    listed = await run_in_threadpool(desk.reports)
    return console_page(request, "reports.html", user, title="CyberTipline reports",
                        reports=listed, configured=desk.configured() is not None)


@router.get("/reports/{report_id:int}", response_class=HTMLResponse)
async def report(request: Request, report_id: int, user: ChildSafety,
                 desk: CyberTipDep) -> HTMLResponse:
    return await _page(request, report_id, user, desk)


async def _page(request: Request, report_id: int, user: LiveSession, desk: CyberTipDep, *,
                errors: list[dict[str, str]] | None = None, form: dict[str, str] | None = None,
                status_code: int = 200) -> HTMLResponse:
    found = await run_in_threadpool(desk.report, report_id)
    return console_page(request, "report.html", user, title=f"Report {report_id}",
                        status_code=status_code, report=found, errors=errors or [],
                        form=form or {}, classifications=CLASSIFICATIONS,
                        configured=desk.configured() is not None)


@router.post("/reports/{report_id:int}/confirm", response_class=HTMLResponse)
async def confirm(request: Request, report_id: int, user: ChildSafety,
                  desk: CyberTipDep) -> Response:
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=10)
    values = {k: str(form.get(k, "")).strip() for k in ("classification", "rationale")}
    try:
        await run_in_threadpool(desk.confirm, report_id,
                                actor=f"user:{user.person.id}:{user.person.username}",
                                classification=values["classification"],
                                rationale=values["rationale"])
    except InvalidRequest as exc:
        message = str(exc)
        return await _page(request, report_id, user, desk, status_code=422, form=values,
                           errors=[{"anchor": exc.field or "classification",
                                    "message": message[:1].upper() + message[1:] + "."}])
    return RedirectResponse(f"/console/reports/{report_id}", status_code=303)
