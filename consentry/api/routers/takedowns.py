"""Takedown requests: ``POST /v1/takedowns`` (public: victims need no account), the
requester's status by case number + PIN, and the case workers' list and actions.

The service raises the package's errors (``consentry.errors``); the app maps them to
statuses once. Limits on guessing and flooding live in the service, counted per client.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, status
from fastapi.concurrency import run_in_threadpool

from consentry.access import Principal, Scope
from consentry.api.auth import require
from consentry.cases.case import Due
from consentry.cases.takedowns import SubmitResult
from consentry.http.bodies import decode_base64
from consentry.http.deps import ClientDep, TakedownsDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.takedowns import (
    AppealIn,
    CaseListOut,
    CaseOut,
    CaseRecordOut,
    RejectIn,
    RemoveIn,
    ReverseIn,
    SubmittedOut,
    TakedownIn,
)
from consentry.reporting.sla import takedown_sla

router = APIRouter(prefix="/v1/takedowns", tags=["takedowns"])

CaseWorker = Annotated[Principal, Depends(require(Scope.CASES))]
Pin = Annotated[str, Header(alias="X-Case-PIN", max_length=64,
                            description="the PIN shown once when the request was made")]


def submitted(result: SubmitResult) -> SubmittedOut:
    return SubmittedOut(case=CaseOut.of(result.case), pin=result.pin,
                        complete=not result.missing)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SubmittedOut,
             summary="Submit a takedown request (public; no account needed)",
             responses=responses(413, 422, 429))
async def submit(body: TakedownIn, svc: TakedownsDep, client: ClientDep,
                 background: BackgroundTasks) -> SubmittedOut:
    """Answers as soon as the case is recorded, located and banked; the platform's removal
    callbacks run right after the answer (so a slow platform never delays the PIN). At
    most 30 requests an hour from one client."""
    images = [decode_base64(v, f"images[{i}]") for i, v in enumerate(body.images)]
    result = await run_in_threadpool(svc.submit, body.submission(len(images)), images,
                                     channel="api", client=client, callbacks_now=False)
    background.add_task(svc.dispatch_soon)
    return submitted(result)


@router.get("/{number}", response_model=CaseOut,
            summary="A request's status, for the requester (case number + PIN)",
            responses=responses(404, 422, 429))
async def requester_status(number: str, pin: Pin, svc: TakedownsDep,
                           client: ClientDep) -> CaseOut:
    """An unknown number and a wrong PIN get the same answer; five wrong PINs from one
    client lock that client out of the case for 15 minutes (doubling after)."""
    return CaseOut.of(await run_in_threadpool(svc.status, number, pin, client=client))


@router.post("/{number}/amend", response_model=SubmittedOut,
             summary="Complete an incomplete request (case number + PIN)",
             responses=responses(404, 409, 413, 422, 429))
async def amend(number: str, body: TakedownIn, pin: Pin, svc: TakedownsDep,
                client: ClientDep, background: BackgroundTasks) -> SubmittedOut:
    images = [decode_base64(v, f"images[{i}]") for i, v in enumerate(body.images)]
    result = await run_in_threadpool(svc.amend, number, pin, body.submission(len(images)),
                                     images, client=client, callbacks_now=False)
    background.add_task(svc.dispatch_soon)
    return submitted(result)


@router.post("/{number}/appeal", response_model=CaseOut,
             summary="Contest a rejection (case number + PIN)",
             responses=responses(404, 409, 422, 429))
async def appeal(number: str, body: AppealIn, pin: Pin, svc: TakedownsDep,
                 client: ClientDep) -> CaseOut:
    return CaseOut.of(await run_in_threadpool(svc.appeal, number, pin, body.reason,
                                              client=client))


@router.get("", response_model=CaseListOut,
            summary="Open cases by deadline; ?due=overdue|at_risk|open",
            responses=responses(*AUTH, 422))
async def list_cases(svc: TakedownsDep, _: CaseWorker,
                     due: Annotated[Due, Query()] = Due.OPEN) -> CaseListOut:
    views = await run_in_threadpool(svc.list_cases, due)
    now = svc.now()
    return CaseListOut(due=due, cases=[CaseRecordOut.of_record(v, now) for v in views],
                       sla=await run_in_threadpool(takedown_sla, svc.db))


@router.get("/{number}/record", response_model=CaseRecordOut,
            summary="The whole case, history included (case workers)",
            responses=responses(*AUTH, 404))
async def record(number: str, svc: TakedownsDep, _: CaseWorker) -> CaseRecordOut:
    return CaseRecordOut.of_record(await run_in_threadpool(svc.view, number), svc.now())


@router.post("/{number}/remove", response_model=CaseRecordOut,
             summary="Confirm removal (re-locate, retry failed callbacks)",
             responses=responses(*AUTH, 404, 409, 422))
async def remove(number: str, svc: TakedownsDep, who: CaseWorker,
                 body: RemoveIn | None = None) -> CaseRecordOut:
    view = await run_in_threadpool(svc.remove, number, actor=f"key:{who.name}",
                                   content_ids=body.content_ids if body else ())
    return CaseRecordOut.of_record(view)


@router.post("/{number}/reject", response_model=CaseRecordOut,
             summary="Reject with reasons the requester can read",
             responses=responses(*AUTH, 404, 409, 422))
async def reject(number: str, body: RejectIn, svc: TakedownsDep,
                 who: CaseWorker) -> CaseRecordOut:
    view = await run_in_threadpool(svc.reject, number, body.reasons, actor=f"key:{who.name}")
    return CaseRecordOut.of_record(view)


@router.post("/{number}/reverse", response_model=CaseRecordOut,
             summary="Restore removed content (a moderator's reversal)",
             responses=responses(*AUTH, 404, 409, 422))
async def reverse(number: str, body: ReverseIn, svc: TakedownsDep,
                  who: CaseWorker) -> CaseRecordOut:
    view = await run_in_threadpool(svc.reverse, number, body.reason, actor=f"key:{who.name}")
    return CaseRecordOut.of_record(view)
