"""``/v1/prompt-bank``: phrasings reviewers confirmed as abuse (scope ``banks``).

Adding a phrasing refuses its near paraphrases from the next request on, in every
language the semantic layer's encoder covers (docs/prompt-bank.md). Entries are disabled
and enabled again, never deleted; every change names the API key that made it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from consentry.access import Principal, Scope
from consentry.api.auth import require
from consentry.banks.prompt_bank import CLAUSES, MAX_TEXT
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses

router = APIRouter(prefix="/v1/prompt-bank", tags=["prompt bank"])
Admin = Annotated[Principal, Depends(require(Scope.BANKS))]
EntryId = Annotated[int, Path(ge=1, le=2**31 - 1, description="a prompt bank entry id")]


class PromptBankAdd(BaseModel):
    """A phrasing to refuse, with the clause it breaks and why."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    clause: str = Field(description=f"one of {', '.join(CLAUSES)}")
    reason: str = Field(min_length=1, max_length=2000)
    source_check: str | None = Field(default=None, max_length=40,
                                     description="the check id the phrasing came from")


class PromptBankChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool
    reason: str = Field(default="", max_length=2000)


class PromptBankEntryView(BaseModel):
    id: int
    text: str
    clause: str
    author: str
    reason: str
    source_check: str | None
    status: str
    created_at: str
    changed_at: str
    changed_by: str
    change_reason: str


class PromptBankPage(BaseModel):
    entries: list[PromptBankEntryView]
    next_after: int | None


@router.post("", response_model=PromptBankEntryView, status_code=status.HTTP_201_CREATED,
             summary="Add a phrasing: its near paraphrases are refused from now on",
             responses=responses(*AUTH, 422))
async def add_entry(body: PromptBankAdd, gate: GateDep, principal: Admin) -> dict[str, Any]:
    entry = await run_in_threadpool(gate.prompt_bank.add, body.text, body.clause,
                                    author=principal.name, reason=body.reason,
                                    source_check=body.source_check)
    return entry.to_dict()


@router.get("", response_model=PromptBankPage, summary="The bank's entries, by id",
            responses=responses(*AUTH, 422))
async def list_entries(gate: GateDep, _: Admin,
                       after: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    entries = await run_in_threadpool(gate.prompt_bank.entries, after=after, limit=limit)
    return {"entries": [e.to_dict() for e in entries],
            "next_after": entries[-1].id if len(entries) == limit else None}


@router.patch("/{entry_id:int}", response_model=PromptBankEntryView,
              summary="Disable an entry (it stops matching) or enable it again",
              responses=responses(*AUTH, 404, 422))
async def change_entry(entry_id: EntryId, change: PromptBankChange, gate: GateDep,
                       principal: Admin) -> dict[str, Any]:
    entry = await run_in_threadpool(gate.prompt_bank.set_enabled, entry_id, change.enabled,
                                    actor=principal.name, reason=change.reason)
    return entry.to_dict()
