"""The public appeal page, ``/appeals``: the link in every statement of reasons opens it
with the token filled in. No account, no JavaScript needed; the same service and checks
as ``POST /v1/appeals``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from consentry.api.routers.appeals import APPEALS_PER_CLIENT
from consentry.errors import ConsentryError
from consentry.http.bodies import read_form
from consentry.http.deps import AppealsDep, ClientDep, LimitsDep
from consentry.http.errors import retry_after, status_of
from consentry.web.takedown import templates

router = APIRouter(include_in_schema=False)
_ANCHORS = {"token": "token", "reason": "reason", "contact": "contact"}


def _page(request: Request, status_code: int = 200, **context: object) -> HTMLResponse:
    return templates.TemplateResponse(
        request, "appeal.html", {"title": "Appeal a decision", "errors": [], **context},
        status_code=status_code, headers={"Cache-Control": "no-store"})


@router.get("/appeals", response_class=HTMLResponse)
async def appeal_form(request: Request, token: str = "") -> HTMLResponse:
    return _page(request, form={"token": token, "reason": "", "contact": ""})


@router.post("/appeals", response_class=HTMLResponse)
async def appeal_submit(request: Request, desk: AppealsDep, limits: LimitsDep,
                        client: ClientDep) -> HTMLResponse:
    form = await read_form(request, max_files=0, max_fields=10)
    values = {k: str(form.get(k, "")) for k in ("token", "reason", "contact")}
    try:
        await run_in_threadpool(limits.take, APPEALS_PER_CLIENT, client)
        filed = await run_in_threadpool(desk.file, values["token"], values["reason"],
                                        values["contact"] or None)
    except ConsentryError as exc:
        field = getattr(exc, "field", None) or "token"
        response = _page(request, status_of(exc), form=values, errors=[
            {"anchor": _ANCHORS.get(field, "token"), "message": str(exc)}])
        response.headers.update(retry_after(exc) or {})
        return response
    return _page(request, 201, filed=filed)
