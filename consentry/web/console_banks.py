"""Console pages for hash banks and the policy: browse banks and their entries (hashes
only: no bank keeps media, and entries of child-abuse banks are listed only to
child-safety reviewers and admins), disable or re-enable an entry with a rationale
(leads and admins; recorded in the bank's event log with the person's name), and read the
policy in force, clause by clause."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from consentry.banks.registry import BankCategory, BankNotFound, EntryInfo
from consentry.http.bodies import read_form
from consentry.http.deps import CurrentUser, GateDep, check_csrf, require_roles
from consentry.people import LiveSession
from consentry.people.roles import Role, may_see_restricted
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE = 100
MIN_RATIONALE_WORDS = 3
_CHANGE_ENTRIES = frozenset({Role.ADMIN, Role.LEAD})


def _may_change(user: LiveSession) -> bool:
    return not _CHANGE_ENTRIES.isdisjoint(user.person.roles)


def _restricted_bank(category: str, user: LiveSession) -> bool:
    return category == BankCategory.CSAM.value and not may_see_restricted(user.person.roles)


@router.get("/banks", response_class=HTMLResponse)
async def banks(request: Request, user: CurrentUser, gate: GateDep) -> HTMLResponse:
    listed = await run_in_threadpool(gate.banks.registry.list)
    return console_page(request, "banks.html", user, title="Hash banks", banks=listed)


@router.get("/banks/{name}", response_class=HTMLResponse)
async def bank(request: Request, name: str, user: CurrentUser, gate: GateDep,
               after: int = 0) -> HTMLResponse:
    registry = gate.banks.registry
    info = await run_in_threadpool(registry.get, name)
    if _restricted_bank(info.category.value, user):
        raise BankNotFound(f"no bank named {name!r}")  # as if it did not exist
    entries = await run_in_threadpool(registry.entries, name, limit=PAGE,
                                      after_id=max(0, after), include_removed=False)
    return console_page(request, "bank.html", user, title=f"Bank {name}", bank=info,
                        entries=entries, may_change=_may_change(user),
                        next_after=entries[-1].id if len(entries) == PAGE else None)


@router.get("/banks/{name}/entries/{entry_id:int}", response_class=HTMLResponse)
async def entry(request: Request, name: str, entry_id: int, user: CurrentUser,
                gate: GateDep) -> HTMLResponse:
    found = await _entry(gate, name, entry_id, user)
    history = await run_in_threadpool(gate.banks.registry.history, entry_id)
    return console_page(request, "bank_entry.html", user, title=f"Entry {entry_id}",
                        entry=found, history=history, may_change=_may_change(user),
                        errors=[])


@router.post("/banks/{name}/entries/{entry_id:int}", response_class=HTMLResponse)
async def change_entry(request: Request, name: str, entry_id: int,
                       user: Annotated[LiveSession, require_roles(*_CHANGE_ENTRIES)],
                       gate: GateDep) -> Response:
    await check_csrf(request, user)
    found = await _entry(gate, name, entry_id, user)
    form = await read_form(request, max_files=0, max_fields=10)
    enable = form.get("enable") == "1"
    rationale = " ".join(str(form.get("rationale", "")).split())
    if len(rationale.split()) < MIN_RATIONALE_WORDS:
        history = await run_in_threadpool(gate.banks.registry.history, entry_id)
        return console_page(request, "bank_entry.html", user, title=f"Entry {entry_id}",
                            status_code=422, entry=found, history=history, may_change=True,
                            errors=[{"anchor": "rationale", "message": "say why in a few "
                                     "words: the next person reads it"}])
    await run_in_threadpool(gate.banks.registry.set_entry_enabled, entry_id, enable,
                            actor=f"user:{user.person.id}:{user.person.username}",
                            reason=rationale[:500])
    return RedirectResponse(f"/console/banks/{name}/entries/{entry_id}", status_code=303)


@router.get("/policy", response_class=HTMLResponse)
async def policy(request: Request, user: CurrentUser, gate: GateDep) -> HTMLResponse:
    return console_page(request, "policy.html", user, title="Policy", policy=gate.policy)


async def _entry(gate: GateDep, name: str, entry_id: int, user: LiveSession) -> EntryInfo:
    registry = gate.banks.registry
    info = await run_in_threadpool(registry.get, name)
    found = await run_in_threadpool(registry.entry, entry_id)
    if found.bank != name or found.status == "removed" or _restricted_bank(
            info.category.value, user):
        raise BankNotFound(f"bank {name!r} has no entry {entry_id}")
    return found


