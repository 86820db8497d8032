"""The console's review pages: the home page with the queues (and, for leads, how each is
doing), a queue with SLA countdowns and bulk decisions, one item with everything needed
to decide it, and its media: blurred and grey unless revealed, rendered on the server so
the browser holds no unblurred bytes until a person asks for them.

Every rule lives in ``cases.review`` (who sees and holds what, reveals) and
``cases.decisions`` (what a decision does); these routes shape pages and forms. Every
form carries the session's CSRF token; deciding, claiming and revealing need a role that
decides (compliance reads only). Works without JavaScript; ``console.js`` adds the
re-blur timer, live countdowns and "select all".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from consentry.banks.prompt_bank import CLAUSES as PROMPT_BANK_CLAUSES
from consentry.cases.decisions import MAX_BULK, Outcome
from consentry.cases.review import PAGE, ItemDetail, ItemGone, Reviewer, ReviewQueues
from consentry.config import Settings
from consentry.errors import InvalidRequest
from consentry.gate import Gate
from consentry.http.bodies import read_form
from consentry.http.deps import (
    CurrentUser,
    DecisionsDep,
    GateDep,
    QueuesDep,
    SettingsDep,
    check_csrf,
    require_roles,
)
from consentry.people import LiveSession, Role
from consentry.policy.routing import CHILD_SAFETY_CLAUSES, Queue
from consentry.signals.preview import Look
from consentry.web import review_view as view
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

# Who may claim, decide and reveal: everyone but compliance (read-only).
Decider = Annotated[LiveSession, require_roles(Role.ADMIN, Role.LEAD, Role.MODERATOR,
                                                Role.CHILD_SAFETY)]
MEDIA_HEADERS: Final = {"Cache-Control": "no-store, private", "Pragma": "no-cache"}
_MAX_FORM_FIELDS: Final = MAX_BULK + 10


def reviewer(user: LiveSession) -> Reviewer:
    person = user.person
    return Reviewer(person.id, person.username, frozenset(r.value for r in person.roles))


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _queue(queues: ReviewQueues, who: Reviewer, name: str) -> str:
    if name not in queues.queues(who):  # restricted or unknown: not found either way
        raise ItemGone(f"no queue named {name!r}")
    return name


# -- home ---------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def home(request: Request, user: CurrentUser, queues: QueuesDep) -> HTMLResponse:
    who = reviewer(user)
    stats = await run_in_threadpool(queues.stats, who)
    reveals = await run_in_threadpool(queues.reveals_this_shift, who)
    counts = await run_in_threadpool(queues.reveal_counts) if who.leads else {}
    return console_page(request, "home.html", user, title="Console", stats=stats,
                        labels=view.QUEUE_LABELS, decides=who.decides, leads=who.leads,
                        reveals=reveals, reveal_limit=queues.reveals_per_shift,
                        reveal_counts=sorted(counts.items()), now=queues.now(),
                        duration=view.duration)


# -- a queue ------------------------------------------------------------------------------


def _cursor(after: str | None) -> tuple[int, datetime, int] | None:
    """The (priority, due_at, id) of the previous page's last item, as ``p.iso.id``."""
    if not after:
        return None
    try:
        priority, due, item_id = after.split("~")
        return int(priority), datetime.fromisoformat(due), int(item_id)
    except ValueError:
        raise InvalidRequest("invalid_cursor", "this page link is damaged: start again "
                             "from the first page", field="after") from None


@router.get("/queues/{queue}", response_class=HTMLResponse)
async def queue_page(request: Request, queue: str, user: CurrentUser, queues: QueuesDep,
                     gate: GateDep, after: str | None = None,
                     notice: str | None = None) -> HTMLResponse:
    return await _queue_page(request, queue, user, queues, gate, after=after,
                             notice=_NOTICES.get(notice or ""))


_NOTICES: Final = {"empty": "Nothing in this queue is free for you to take right now.",
                   "reveal_limit": "You have reached this shift's limit of revealed images: "
                                   "only work without images is offered now."}


async def _queue_page(request: Request, queue: str, user: LiveSession, queues: ReviewQueues,
                      gate: Gate, *, after: str | None = None, notice: str | None = None,
                      errors: list[dict[str, str]] | None = None,
                      outcomes: list[Outcome] | None = None, form: dict[str, Any] | None = None,
                      status_code: int = 200) -> HTMLResponse:
    who = reviewer(user)
    name = _queue(queues, who, queue)
    items = await run_in_threadpool(queues.page, who, name, after=_cursor(after))
    now = queues.now()
    last = items[-1] if len(items) == PAGE else None
    return console_page(
        request, "queue.html", user, title=view.QUEUE_LABELS.get(name, name),
        status_code=status_code, queue=name, label=view.QUEUE_LABELS.get(name, name),
        items=[(i, view.countdown(i.due_at, now), i.held_by_other(who, now)) for i in items],
        kinds=view.KIND_LABELS, decides=who.decides, me=who.id, notice=notice,
        next_after=f"{last.priority}~{last.due_at.isoformat()}~{last.id}" if last else None,
        clauses=_clauses(gate, who), escalations=ESCALATIONS, errors=errors or [],
        outcomes=outcomes or [], form=form or {}, max_bulk=MAX_BULK)


@router.post("/queues/{queue}/next")
async def take_next(request: Request, queue: str, user: Decider,
                    queues: QueuesDep) -> Response:
    await check_csrf(request, user)
    who = reviewer(user)
    name = _queue(queues, who, queue)
    taken = await run_in_threadpool(queues.take_next, who, name)
    if taken is None:
        return _see_other(f"/console/queues/{name}?notice=empty")
    return _see_other(f"/console/items/{taken.id}")


@router.post("/queues/{queue}/decisions", response_class=HTMLResponse)
async def decide_many(request: Request, queue: str, user: Decider, queues: QueuesDep,
                      decisions: DecisionsDep, gate: GateDep) -> Response:
    # Read first with room for 500 ticked boxes (the CSRF check reuses the parsed form).
    form = await read_form(request, max_files=0, max_fields=_MAX_FORM_FIELDS)
    await check_csrf(request, user)
    who = reviewer(user)
    name = _queue(queues, who, queue)
    ids, errors = _item_ids(form)
    values = _decision_form(form)
    if not errors:
        try:
            outcomes = await run_in_threadpool(
                decisions.decide, who, ids, values["decision"], values["clause"],
                values["rationale"], escalate_to=values["escalate_to"] or None)
        except InvalidRequest as exc:
            errors = [_form_error(exc)]
        else:
            if all(o.decided for o in outcomes):
                return _see_other(f"/console/queues/{name}")
            return await _queue_page(request, name, user, queues, gate, outcomes=outcomes,
                                     status_code=200, form=values)
    return await _queue_page(request, name, user, queues, gate, errors=errors,
                             status_code=422, form={**values, "items": ids})


def _item_ids(form: FormData) -> tuple[list[int], list[dict[str, str]]]:
    raw = form.getlist("item")
    try:
        ids = [int(str(v)) for v in raw]
    except ValueError:
        return [], [{"anchor": "items", "message": "The selection is damaged: reload the "
                     "page and tick the items again."}]
    if not ids:
        return [], [{"anchor": "items", "message": "Tick the items to decide."}]
    if len(ids) > MAX_BULK:
        return [], [{"anchor": "items", "message": f"Decide at most {MAX_BULK} items at "
                     f"once, not {len(ids)}."}]
    return ids, []


# -- one item -----------------------------------------------------------------------------


@router.get("/items/{item_id:int}", response_class=HTMLResponse)
async def item_page(request: Request, item_id: int, user: CurrentUser, queues: QueuesDep,
                    gate: GateDep, settings: SettingsDep,
                    notice: str | None = None) -> HTMLResponse:
    return await _item_page(request, item_id, user, queues, gate, settings,
                            notice=_ITEM_NOTICES.get(notice or ""))


_ITEM_NOTICES: Final = {"claimed": "This item is yours for the next 10 minutes.",
                        "released": "You have released this item: anyone may take it now.",
                        "decided": "Your decision is recorded.",
                        "banked": "The phrasing is in the prompt bank: near paraphrases are "
                                  "refused from the next request on."}


async def _item_page(request: Request, item_id: int, user: LiveSession,
                     queues: ReviewQueues, gate: Gate, settings: Settings, *,
                     notice: str | None = None, errors: list[dict[str, str]] | None = None,
                     form: dict[str, Any] | None = None,
                     status_code: int = 200) -> HTMLResponse:
    who = reviewer(user)
    detail: ItemDetail = await run_in_threadpool(queues.detail, who, item_id)
    reveals = await run_in_threadpool(queues.reveals_this_shift, who)
    now = queues.now()
    item = detail.item
    reasons: list[dict[str, Any]] = (detail.check or {}).get("verdict", {}).get("reasons", [])
    prompt = (detail.check or {}).get("prompt") or ""
    return console_page(
        request, "item.html", user, title=f"Item {item.id}", status_code=status_code,
        d=detail, item=item, kind=view.KIND_LABELS.get(item.kind, item.kind),
        queue_label=view.QUEUE_LABELS.get(item.queue, item.queue),
        due=view.countdown(item.due_at, now), now=now,
        held_by_other=item.held_by_other(who, now),
        mine=item.claimed_by == who.id and item.claimed_until is not None
        and item.claimed_until > now,
        decides=who.decides and item.status == "open",
        segments=view.highlighted(prompt, reasons) if prompt else [],
        reasons=reasons, matches=view.bank_matches(reasons),
        provenance=(detail.check or {}).get("verdict", {}).get("provenance"),
        faces=[view.faces_of(reasons, i) for i in range(detail.media)],
        labels=view.DECISION_LABELS.get(item.kind, ("Uphold", "Overturn")),
        clauses=_clauses(gate, who), escalations=ESCALATIONS,
        reveals=reveals, reveal_limit=queues.reveals_per_shift,
        may_reveal=who.decides and reveals < queues.reveals_per_shift,
        reveal_seconds=settings.reveal_seconds, notice=notice, errors=errors or [],
        form=form or {}, duration=view.duration,
        bank_clauses=[c for c in PROMPT_BANK_CLAUSES
                      if who.sees_restricted or c not in CHILD_SAFETY_CLAUSES])


@router.post("/items/{item_id:int}/claim")
async def claim(request: Request, item_id: int, user: Decider, queues: QueuesDep) -> Response:
    await check_csrf(request, user)
    await run_in_threadpool(queues.claim, reviewer(user), item_id)
    return _see_other(f"/console/items/{item_id}?notice=claimed")


@router.post("/items/{item_id:int}/release")
async def release(request: Request, item_id: int, user: Decider,
                  queues: QueuesDep) -> Response:
    await check_csrf(request, user)
    await run_in_threadpool(queues.release, reviewer(user), item_id)
    return _see_other(f"/console/items/{item_id}?notice=released")


@router.post("/items/{item_id:int}/decision", response_class=HTMLResponse)
async def decide_one(request: Request, item_id: int, user: Decider, queues: QueuesDep,
                     decisions: DecisionsDep, gate: GateDep,
                     settings: SettingsDep) -> Response:
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=20)
    values = _decision_form(form)
    try:
        [outcome] = await run_in_threadpool(
            decisions.decide, reviewer(user), [item_id], values["decision"],
            values["clause"], values["rationale"], escalate_to=values["escalate_to"] or None)
    except InvalidRequest as exc:
        return await _item_page(request, item_id, user, queues, gate, settings,
                                errors=[_form_error(exc)], form=values, status_code=422)
    if not outcome.decided:
        if outcome.problem == "no such item":
            raise ItemGone(f"no item {item_id}")
        return await _item_page(request, item_id, user, queues, gate, settings,
                                errors=[{"anchor": "decision", "message":
                                         _sentence(outcome.problem or "not decided")}],
                                form=values, status_code=409)
    return _see_other(f"/console/items/{item_id}?notice=decided")


@router.post("/items/{item_id:int}/prompt-bank", response_class=HTMLResponse)
async def bank_phrasing(request: Request, item_id: int, user: Decider, queues: QueuesDep,
                        gate: GateDep, settings: SettingsDep) -> Response:
    """Add the item's request text to the prompt bank: near paraphrases, in any language
    the encoder reads, are refused from the next request on."""
    await check_csrf(request, user)
    form = await read_form(request, max_files=0, max_fields=10)
    who = reviewer(user)
    detail = await run_in_threadpool(queues.detail, who, item_id)  # visible to them?
    prompt = (detail.check or {}).get("prompt")
    clause, reason = str(form.get("bank_clause", "")), str(form.get("bank_reason", ""))
    if not prompt:
        raise ItemGone(f"item {item_id} has no request text to bank")
    try:
        await run_in_threadpool(gate.prompt_bank.add, prompt, clause,
                                author=f"user:{who.id}:{who.name}", reason=reason,
                                source_check=(detail.check or {}).get("id"))
    except InvalidRequest as exc:
        return await _item_page(request, item_id, user, queues, gate, settings,
                                errors=[{"anchor": "bank_reason",
                                         "message": _sentence(str(exc))}], status_code=422)
    return _see_other(f"/console/items/{item_id}?notice=banked")


# -- media --------------------------------------------------------------------------------


@router.get("/items/{item_id:int}/media/{position:int}")
async def media(item_id: int, position: int, user: CurrentUser, queues: QueuesDep,
                gate: GateDep) -> Response:
    """The blurred, grey copy: what every page shows."""
    return await _rendered(item_id, position, user, queues, gate, Look.BLURRED)


@router.post("/items/{item_id:int}/media/{position:int}/reveal")
async def reveal(request: Request, item_id: int, position: int, user: Decider,
                 queues: QueuesDep, gate: GateDep) -> Response:
    """The image in colour, for one look: recorded as an event; past the shift's limit,
    refused (429)."""
    await check_csrf(request, user)
    return await _rendered(item_id, position, user, queues, gate, Look.REVEALED)


async def _rendered(item_id: int, position: int, user: LiveSession, queues: ReviewQueues,
                    gate: Gate, look: Look) -> Response:
    data, reasons = await run_in_threadpool(queues.media_and_reasons, reviewer(user),
                                            item_id, position,
                                            reveal=look is Look.REVEALED)
    preview = await run_in_threadpool(gate.sandbox.preview, data, look,
                                      faces=view.faces_of(reasons, position))
    return Response(preview.content, media_type=preview.media_type,
                    headers={**MEDIA_HEADERS, "X-Consentry-Look": preview.look.value})


# -- forms --------------------------------------------------------------------------------


def _decision_form(form: FormData) -> dict[str, str]:
    def text(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""
    return {"decision": text("decision"), "clause": text("clause"),
            "rationale": text("rationale"), "escalate_to": text("escalate_to")}


def _form_error(exc: InvalidRequest) -> dict[str, str]:
    anchor = {"decision": "decision", "clause": "clause", "rationale": "rationale",
              "escalate_to": "escalate_to", "items": "items"}.get(exc.field or "", "decision")
    return {"anchor": anchor, "message": _sentence(str(exc))}


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _clauses(gate: Gate, who: Reviewer) -> list[tuple[str, str]]:
    """The clauses this person may decide under (child-safety clauses only for those who
    see restricted items; others escalate)."""
    return [(cid, clause.title) for cid, clause in gate.policy.clauses.items()
            if who.sees_restricted or cid not in CHILD_SAFETY_CLAUSES]


ESCALATIONS: Final = ((Queue.CHILD_SAFETY.value, "Child safety"), (Queue.LEADS.value, "A lead"))

