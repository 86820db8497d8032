"""The public takedown pages: ``/takedown`` (the form; works without JavaScript, and with
it hashes the image on the requester's device) and ``/takedown/status`` (case number +
PIN). Same service and same checks as ``POST /v1/takedowns``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData, UploadFile

from consentry.api.routers._body import validate
from consentry.api.routers.takedowns import (
    TakedownIn,
    admit_submission,
    call_service,
    service,
)
from consentry.cases.case import CaseStatus
from consentry.cases.intake import Declaration, Regime, Relationship
from consentry.cases.notices import REGIME_NAMES, format_deadline
from consentry.cases.takedowns import SubmitResult
from consentry.gate import InvalidRequest

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


def _page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, {"title": "Report an image", **context},
                                      status_code=status_code,
                                      headers={"Cache-Control": "no-store"})


def _form_page(request: Request, form: dict[str, Any] | None = None, *,
               errors: list[dict[str, str]] | None = None, amend: str | None = None,
               status_code: int = 200) -> HTMLResponse:
    values = {"declarations": [], **(form or {})}
    return _page(request, "takedown_form.html", status_code, form=values, errors=errors or [],
                 errors_title="There is a problem", regimes=_REGIMES,
                 relationships=_RELATIONSHIPS, declarations=_DECLARATIONS,
                 amend={"number": amend} if amend else None)


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
async def takedown_submit(request: Request, background: BackgroundTasks) -> HTMLResponse:
    form = await request.form()
    fields = _fields(form)
    amend = str(form.get("case_number", "")).strip() or None
    if not amend:
        try:
            admit_submission(request)
        except HTTPException as exc:
            return _form_page(request, fields, status_code=exc.status_code,
                              errors=[{"anchor": "main", "message": exc.detail["message"]}])
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
        field = (exc.field or "").split(".")[0]
        message = ("Choose which law you are reporting under" if field == "regime"
                   else f"Check this answer: {exc}")
        return _form_page(request, fields, amend=amend, status_code=422,
                          errors=[{"anchor": _ANCHORS.get(field, field), "message": message}])
    svc = service(request)
    images = [image] if image else []
    try:
        if amend:  # the PIN is checked and throttled like the status page
            result: SubmitResult = await call_service(
                svc.amend, amend, str(form.get("pin", "")), body.submission(len(images)),
                images, callbacks_now=False, pin_of=request)
        else:
            result = await call_service(svc.submit, body.submission(len(images)), images,
                                        channel="web", callbacks_now=False)
    except InvalidRequest as exc:
        anchor = "image" if exc.field.startswith("images") else "content"
        return _form_page(request, fields, amend=amend, status_code=413 if exc.too_large
                          else 422, errors=[{"anchor": anchor, "message": str(exc)}])
    except HTTPException as exc:  # wrong PIN, locked case, not incomplete any more, busy
        return _form_page(request, fields, amend=amend, status_code=exc.status_code,
                          errors=[{"anchor": "main" if exc.status_code in (409, 503) else "pin",
                                   "message": exc.detail["message"]}])
    background.add_task(svc.dispatch)  # the platform is called once the page is sent
    return _done_page(request, result.case.public(), result.case.status, pin=result.pin,
                      status_code=201)


@router.get("/takedown/status", response_class=HTMLResponse)
async def status_form(request: Request) -> HTMLResponse:
    return _page(request, "takedown_status.html", number="", error=None)


@router.post("/takedown/status", response_class=HTMLResponse)
async def status_lookup(request: Request) -> HTMLResponse:
    form = await request.form()
    number, pin = str(form.get("case_number", "")).strip(), str(form.get("pin", "")).strip()
    try:
        view = await call_service(service(request).status, number, pin, pin_of=request)
    except HTTPException as exc:
        message = exc.detail["message"] if isinstance(exc.detail, dict) else str(exc.detail)
        return _page(request, "takedown_status.html", exc.status_code, number=number,
                     error=message[:1].upper() + message[1:] + ".")
    return _done_page(request, view.public(), view.status)
