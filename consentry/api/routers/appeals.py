"""``POST /v1/appeals``: an affected user contests a restriction (public: the signed token
in the statement of reasons proves standing). A person who did not make the decision
reviews it."""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.concurrency import run_in_threadpool

from consentry.http.deps import AppealsDep, ClientDep, LimitsDep
from consentry.http.errors import responses
from consentry.http.schemas.appeals import AppealIn, AppealOut
from consentry.limits import RateLimit

router = APIRouter(prefix="/v1/appeals", tags=["appeals"])

# Tokens cannot be guessed (128-bit signatures); the limit is against floods.
APPEALS_PER_CLIENT = RateLimit("appeal_file", 20, 3600, code="too_many_requests",
                               message="too many appeals from here; try again in an hour")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AppealOut,
             summary="Appeal a decision with the token from its statement of reasons",
             responses=responses(404, 409, 422, 429))
async def file_appeal(body: AppealIn, desk: AppealsDep, limits: LimitsDep,
                      client: ClientDep) -> AppealOut:
    """404: the token names nothing we hold; 409: already appealed, past the 14 days, or
    nothing to appeal; 422: a token not issued by us, or no reason given."""
    await run_in_threadpool(limits.take, APPEALS_PER_CLIENT, client)
    filed = await run_in_threadpool(desk.file, body.token, body.reason, body.contact)
    return AppealOut(reference=filed.reference, filed_at=filed.filed_at)
