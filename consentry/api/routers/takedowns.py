"""Takedown requests: ``POST /v1/takedowns`` (public: victims need no account), the
requester's status by case number + PIN, and the case workers' list and actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Header,
    HTTPException,
    Query,
    Request,
    status,
)
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from consentry.access import Principal, Scope
from consentry.api.auth import require
from consentry.api.routers._body import decode_base64
from consentry.cases.case import Due
from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
)
from consentry.cases.takedowns import (
    MAX_IMAGES,
    CaseLocked,
    CaseNotFound,
    CaseStateError,
    SubmitResult,
    TakedownError,
    TakedownService,
)
from consentry.gate import InvalidRequest
from consentry.signals.sandbox import SandboxBusy

router = APIRouter(prefix="/v1/takedowns", tags=["takedowns"])

T = TypeVar("T")
CaseWorker = Annotated[Principal, Depends(require(Scope.CASES))]

_NOT_FOUND = {"code": "case_not_found", "message": "no case with that number and PIN"}


class TakedownIn(BaseModel):
    """A takedown request. Identify the content by content id, URL, image (base64) or
    hashes computed on the requester's device (PDQ and/or MD5, hex)."""

    regime: Regime
    content_ids: list[str] = Field(default_factory=list, max_length=50)
    urls: list[str] = Field(default_factory=list, max_length=50)
    pdq_hashes: list[str] = Field(default_factory=list, max_length=50)
    md5_hashes: list[str] = Field(default_factory=list, max_length=50)
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES,
                              description="base64 image bytes")
    requester_name: str = ""
    email: str = ""
    other_contact: str = ""
    signature: str = ""
    relationship: Relationship | None = None
    declarations: list[Declaration] = Field(default_factory=list)
    statement: str = ""
    csam: bool = False

    def submission(self, image_count: int = 0) -> TakedownSubmission:
        clean = [u.strip() for u in self.urls if u.strip()]
        return TakedownSubmission(
            regime=self.regime,
            locator=ContentLocator(
                content_ids=tuple(c.strip() for c in self.content_ids if c.strip()),
                urls=tuple(clean), pdq_hashes=tuple(h.strip() for h in self.pdq_hashes),
                md5_hashes=tuple(h.strip() for h in self.md5_hashes), images=image_count),
            requester_name=self.requester_name.strip(), email=self.email.strip(),
            other_contact=self.other_contact.strip(), signature=self.signature.strip(),
            relationship=self.relationship, declarations=frozenset(self.declarations),
            statement=self.statement.strip(), csam=self.csam)


class SubmittedOut(BaseModel):
    case: dict[str, Any]
    pin: str = Field(description="shown once: keep it to check the status page")
    complete: bool


class ModeratorAction(BaseModel):
    reasons: list[str] = Field(default_factory=list)
    reason: str = ""
    content_ids: list[str] = Field(default_factory=list, max_length=50)


def service(request: Request) -> TakedownService:
    return request.app.state.takedowns


def submitted(result: SubmitResult) -> SubmittedOut:
    return SubmittedOut(case=result.case.public(), pin=result.pin,
                        complete=not result.missing)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SubmittedOut,
             summary="Submit a takedown request (public; no account needed)")
async def submit(body: TakedownIn, request: Request,
                 background: BackgroundTasks) -> SubmittedOut:
    """Answers as soon as the case is recorded, located and banked; the platform's removal
    callbacks run right after the answer (so a slow platform never delays the PIN)."""
    admit_submission(request)
    images = [decode_base64(v, f"images[{i}]") for i, v in enumerate(body.images)]
    svc = service(request)
    result = await call_service(svc.submit, body.submission(len(images)), images,
                                channel="api", callbacks_now=False)
    background.add_task(svc.dispatch)
    return submitted(result)


def admit_submission(request: Request) -> None:
    """At most 30 requests an hour from one client: enough for a person or a helper
    organisation filing for several images, not for a flood of bogus removals."""
    client = request.client.host if request.client else "unknown"
    throttle = request.app.state.submit_throttle
    if throttle.blocked(client):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail={
            "code": "too_many_requests", "message": "too many takedown requests from here; "
            "try again in an hour, or contact us directly"})
    throttle.record(client)


async def call_service(fn: Callable[..., T], *args: Any, pin_of: Request | None = None,
                       **kwargs: Any) -> T:
    """Run a takedown service call off the event loop and turn its errors into HTTP
    answers. ``pin_of`` marks a requester's call (proved by case number + PIN): wrong PINs
    then count against the client, and an unknown case gets the same neutral answer as a
    wrong PIN."""
    client = pin_of.client.host if pin_of and pin_of.client else "unknown"
    throttle = pin_of.app.state.pin_throttle if pin_of else None
    if throttle is not None and throttle.blocked(client):
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail={
            "code": "too_many_attempts", "message": "too many wrong case numbers or PINs "
            "from here; try again in 15 minutes"})
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except CaseNotFound as exc:
        if throttle is not None:
            throttle.record(client)
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=_NOT_FOUND) from exc
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail={
            "code": "case_not_found", "message": str(exc)}) from exc
    except CaseLocked as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail={
            "code": "case_locked", "message": str(exc)}) from exc
    except CaseStateError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail={
            "code": "wrong_state", "message": str(exc)}) from exc
    except TakedownError as exc:
        raise InvalidRequest(exc.code, str(exc), field=exc.field or "body",
                             too_large=exc.too_large) from exc
    except SandboxBusy as exc:  # the image decoders are full: nothing was recorded
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            detail={"code": "busy", "message": str(exc)},
                            headers={"Retry-After": str(exc.retry_after_s)}) from exc


@router.get("/{number}", summary="A request's status, for the requester (case number + PIN)")
async def requester_status(number: str, request: Request,
                           x_case_pin: Annotated[str, Header()]) -> dict[str, Any]:
    view = await call_service(service(request).status, number, x_case_pin, pin_of=request)
    return view.public()


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=5000)


@router.post("/{number}/amend", response_model=SubmittedOut,
             summary="Complete an incomplete request (case number + PIN)")
async def amend(number: str, body: TakedownIn, request: Request,
                x_case_pin: Annotated[str, Header()],
                background: BackgroundTasks) -> SubmittedOut:
    images = [decode_base64(v, f"images[{i}]") for i, v in enumerate(body.images)]
    svc = service(request)
    result = await call_service(svc.amend, number, x_case_pin, body.submission(len(images)),
                                images, callbacks_now=False, pin_of=request)
    background.add_task(svc.dispatch)
    return submitted(result)


@router.post("/{number}/appeal", summary="Contest a rejection (case number + PIN)")
async def appeal(number: str, body: AppealIn, request: Request,
                 x_case_pin: Annotated[str, Header()]) -> dict[str, Any]:
    view = await call_service(service(request).appeal, number, x_case_pin, body.reason,
                              pin_of=request)
    return view.public()


@router.get("", summary="Open cases by deadline; ?due=overdue|at_risk|open")
async def list_cases(request: Request, _: CaseWorker,
                     due: Annotated[Due, Query()] = Due.OPEN) -> dict[str, Any]:
    svc = service(request)
    views = await run_in_threadpool(svc.list_cases, due)
    now = svc.now()
    return {"due": due.value, "cases": [v.to_dict(now) for v in views],
            "sla": await run_in_threadpool(svc.sla)}


@router.get("/{number}/record", summary="The whole case, history included (case workers)")
async def record(number: str, request: Request, _: CaseWorker) -> dict[str, Any]:
    svc = service(request)
    return (await call_service(svc.view, number)).to_dict(svc.now())


@router.post("/{number}/remove", summary="Confirm removal (re-locate, retry callbacks)")
async def remove(number: str, body: ModeratorAction, request: Request,
                 who: CaseWorker) -> dict[str, Any]:
    view = await call_service(service(request).remove, number, actor=f"key:{who.name}",
                              content_ids=body.content_ids)
    return view.to_dict()


@router.post("/{number}/reject", summary="Reject with reasons the requester can read")
async def reject(number: str, body: ModeratorAction, request: Request,
                 who: CaseWorker) -> dict[str, Any]:
    view = await call_service(service(request).reject, number, body.reasons,
                              actor=f"key:{who.name}")
    return view.to_dict()


@router.post("/{number}/reverse", summary="Restore removed content (a moderator's reversal)")
async def reverse(number: str, body: ModeratorAction, request: Request,
                  who: CaseWorker) -> dict[str, Any]:
    view = await call_service(service(request).reverse, number, body.reason,
                              actor=f"key:{who.name}")
    return view.to_dict()
