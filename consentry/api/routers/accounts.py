"""``GET /v1/accounts/{id}``: strikes and suspension of an account."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.concurrency import run_in_threadpool

from consentry.access import Scope
from consentry.api.auth import require
from consentry.gate import AccountState
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.get("/{account_id}", response_model=AccountState,
            dependencies=[Depends(require(Scope.ACCOUNTS_READ))],
            summary="Active strikes and suspension of an account",
            responses=responses(*AUTH, 422))
async def account_state(account_id: str, gate: GateDep) -> AccountState:
    return await run_in_threadpool(gate.account_state, account_id)
