"""``GET /v1/statements/{puid}``: a DSA statement of reasons, for the platform to show to
the person it concerns (a verdict names it as ``statement_of_reasons``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from consentry.access import Scope
from consentry.api.auth import require
from consentry.http.deps import GateDep, SettingsDep
from consentry.http.errors import AUTH, responses
from consentry.reporting.statements.view import StatementView, statement_view

router = APIRouter(prefix="/v1/statements", tags=["statements"])


@router.get("/{puid}", response_model=StatementView,
            dependencies=[Depends(require(Scope.ACCOUNTS_READ))],
            summary="A statement of reasons, with its appeal link and submission status",
            responses=responses(*AUTH, 404))
async def get_statement(puid: str, gate: GateDep, settings: SettingsDep) -> StatementView:
    return await run_in_threadpool(
        statement_view, gate.db, puid, gate.appeal_tokens, public_base=settings.public_base,
        appeal_base=settings.appeal_url or f"{settings.public_base}/appeals")
