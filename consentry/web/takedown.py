"""The public takedown pages: ``/takedown`` (the form; works without JavaScript, and with
it hashes the image on the requester's device) and ``/takedown/status`` (case number +
PIN). Same service and same checks as ``POST /v1/takedowns``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData, UploadFile

from consentry.cases.case import CaseStatus
from consentry.cases.intake import Declaration, Regime, Relationship
from consentry.cases.notices import REGIME_NAMES, format_deadline
from consentry.cases.takedowns import SubmitResult
from consentry.errors import ConsentryError, InvalidRequest
from consentry.http.bodies import read_form, validate
from consentry.http.deps import ClientDep, TakedownsDep
from consentry.http.errors import retry_after, status_of
from consentry.http.schemas.takedowns import TakedownIn

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
STATIC_DIR = Path(__file__).parent / "static"

_REGIMES = [(r.value, REGIME_NAMES[r]) for r in Regime]
_RELATIONSHIPS = [(Relationship.SELF.value, "I am the person shown"),
                  (Relationship.AUTHORISED_REPRESENTATIVE.value,
                   "I act for the person shown (a parent, guardian, lawyer or someone they asked)")]
_DECLARATIONS = [
    (Declaration.NOT_CONSENSUAL.value,
     "I believe in good faith that this was shared without the consent of the person shown"),
    (Declaration.INTIMATE.value, "The content is intimate (nudity, underwear or sexual)"),
    (Declaration.PERSON_OR_REPRESENTATIVE.value,
     "I am the person shown, or I act on their behalf"),
    (Declaration.GOOD_FAITH.value, "I make this report in good faith"),
    (Declaration.TRUTH.value, "The information I have given is true, accurate and complete"),
]
_STATUS_TEXT = {
    CaseStatus.RECEIVED: "Received: we are looking for the content",
    CaseStatus.INCOMPLETE: "Waiting for the details listed above",
    CaseStatus.LOCATED: "Found: removal under way",
    CaseStatus.REMOVED: "Removed",
    CaseStatus.REJECTED: "Not removed: we have written to you with the reasons",
    CaseStatus.APPEALED: "Being looked at again",
    CaseStatus.REVERSED: "Restored after review: we have written to you with the reasons",
}
# Where each missing item is asked for on the form (the error summary links there).
_ANCHORS = {"content": "content", "hashes": "content", "location": "urls",
            "signature": "signature", "statement": "statement", "contact": "email",
            "name": "requester_name", "email": "email", "relationship": "relationship"}


def _page(request: Request, name: str, status_code: int = 200, *,
          headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"title": "Report an image", **context},
                                      status_code=status_code,
                                      headers={"Cache-Control": "no-store", **(headers or {})})


def _form_page(request: Request, form: dict[str, Any] | None = None, *,
               errors: list[dict[str, str]] | None = None, amend: str | None = None,
               status_code: int = 200,
               retry_after: dict[str, str] | None = None) -> HTMLResponse:
    values = {"declarations": [], **(form or {})}
    return _page(request, "takedown_form.html", status_code, form=values, errors=errors or [],
                 errors_title="There is a problem", regimes=_REGIMES,
                 relationships=_RELATIONSHIPS, declarations=_DECLARATIONS,
                 amend={"number": amend} if amend else None, headers=retry_after)


def _done_page(request: Request, case: dict[str, Any], status: CaseStatus,
               pin: str | None = None, status_code: int = 200) -> HTMLResponse:
    deadline = format_deadline(datetime.fromisoformat(case["deadline"]))
    return _page(request, "takedown_done.html", status_code, case=case, pin=pin,
                 status_text=_STATUS_TEXT[status], deadline=deadline)


@router.get("/takedown", response_class=HTMLResponse)
async def takedown_form(request: Request, case: str | None = None) -> HTMLResponse:
    return _form_page(request, amend=case)


def _lines(value: str) -> list[str]:
    return [v.strip() for v in value.replace(",", "\n").splitlines() if v.strip()]


def _fields(form: FormData) -> dict[str, Any]:
    text = {k: str(form.get(k, "")) for k in (
        "regime", "urls", "content_ids", "pdq_hashes", "md5_hashes", "requester_name",
        "email", "other_contact", "statement", "signature", "relationship")}
    return {**text, "declarations": [str(v) for v in form.getlist("declarations")],
            "csam": bool(form.get("csam"))}


@router.post("/takedown", response_class=HTMLResponse)
async def takedown_submit(request: Request, svc: TakedownsDep, client: ClientDep,
                          background: BackgroundTasks) -> HTMLResponse:
    form = await read_form(request, max_files=2, max_fields=40)
    fields = _fields(form)
    amend = str(form.get("case_number", "")).strip() or None
    upload = form.get("image")
    image = await upload.read() if isinstance(upload, UploadFile) and upload.filename else None
    try:
        body = validate(TakedownIn, {
            "regime": fields["regime"] or None, "urls": _lines(fields["urls"]),
            "content_ids": _lines(fields["content_ids"]),
            "pdq_hashes": _lines(fields["pdq_hashes"]),
            "md5_hashes": _lines(fields["md5_hashes"]),
            "relationship": fields["relationship"] or None,
            "declarations": fields["declarations"], "csam": fields["csam"],
            **{k: fields[k] for k in ("requester_name", "email", "other_contact",
                                      "statement", "signature")}})
    except InvalidRequest as exc:
        field = exc.field.split(".")[0]
        message = ("Choose which law you are reporting under" if field == "regime"
                   else f"Check this answer: {exc}")
        return _form_page(request, fields, amend=amend, status_code=422,
                          errors=[{"anchor": _ANCHORS.get(field, field), "message": message}])
    images = [image] if image else []
    try:
        if amend:  # the PIN is checked and limited like the status page
            result: SubmitResult = await run_in_threadpool(
                svc.amend, amend, str(form.get("pin", "")), body.submission(len(images)),
                images, client=client, callbacks_now=False)
        else:
            result = await run_in_threadpool(svc.submit, body.submission(len(images)), images,
                                             channel="web", client=client,
                                             callbacks_now=False)
    except InvalidRequest as exc:
        anchor = "image" if exc.field.startswith("images") else "content"
        return _form_page(request, fields, amend=amend, status_code=status_of(exc),
                          errors=[{"anchor": anchor, "message": str(exc)}])
    except ConsentryError as exc:  # wrong PIN, a limit, or not incomplete any more
        anchor = "pin" if amend and status_of(exc) in (404, 429) else "main"
        return _form_page(request, fields, amend=amend, status_code=status_of(exc),
                          errors=[{"anchor": anchor, "message": str(exc)}],
                          retry_after=retry_after(exc))
    background.add_task(svc.dispatch_soon)  # the platform is called once the page is sent
    return _done_page(request, result.case.public(), result.case.status, pin=result.pin,
                      status_code=201)


@router.get("/takedown/status", response_class=HTMLResponse)
async def status_form(request: Request) -> HTMLResponse:
    return _page(request, "takedown_status.html", number="", error=None)


@router.post("/takedown/status", response_class=HTMLResponse)
async def status_lookup(request: Request, svc: TakedownsDep,
                        client: ClientDep) -> HTMLResponse:
    form = await read_form(request, max_files=0, max_fields=10)
    number, pin = str(form.get("case_number", "")).strip(), str(form.get("pin", "")).strip()
    try:
        view = await run_in_threadpool(svc.status, number, pin, client=client)
    except ConsentryError as exc:
        message = str(exc)
        return _page(request, "takedown_status.html", status_of(exc), number=number,
                     error=message[:1].upper() + message[1:] + ".",
                     headers=retry_after(exc))
    return _done_page(request, view.public(), view.status)
