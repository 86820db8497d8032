"""``/v1/banks``: hash-bank administration (scope ``banks``).

Every change is recorded in the bank event log with the API key's name as the actor.
Unknown banks and entries are 404, a duplicate entry 409 (naming the existing entry),
malformed input 422 with the offending field: never a 500 for bad input.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from consentry.access import Principal, Scope
from consentry.api.auth import require
from consentry.banks.registry import (
    BankNotFound,
    EntryHashes,
    EntryInfo,
)
from consentry.banks.services import entry_hashes
from consentry.banks.sweep import entry_in_bank, sweep_entry
from consentry.errors import InvalidRequest
from consentry.http.bodies import (
    decode_base64,
    form_file,
    form_text,
    is_multipart,
    parse_json,
    read_form,
    require_json,
    validate,
)
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.banks import (
    MAX_TEXT,
    BankCreate,
    BankList,
    BankView,
    EnabledChange,
    EntryAdd,
    EntryPage,
    EntryView,
    SweepResult,
)
from consentry.signals.image import ImageRejected
from consentry.signals.sandbox import Sandbox

router = APIRouter(prefix="/v1/banks", tags=["banks"])

Admin = Annotated[Principal, Depends(require(Scope.BANKS))]

MAX_DETAILS_BYTES = 16 * 1024
MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one names nothing
EntryId = Annotated[int, Path(ge=1, le=MAX_ID, description="a bank entry id")]


# -- helpers --------------------------------------------------------------------------


def _live(entry: EntryInfo) -> EntryInfo:
    """A removed entry is kept for the record but is gone for the API."""
    if entry.status == "removed":
        raise BankNotFound(f"bank entry {entry.id} was removed")
    return entry


def strict_hex(field: str, value: str, length: int) -> str:
    """A hash exactly as exchanged: ``length`` hex digits, nothing else (no spaces, no
    prefix). Upper-case digits are accepted and lower-cased: case carries no meaning."""
    if len(value) != length:
        raise InvalidRequest("invalid_hash", f"{field} must be {length} hex characters, "
                             f"got {len(value)}", field=field)
    for i, ch in enumerate(value):
        if ch not in "0123456789abcdefABCDEF":
            raise InvalidRequest("invalid_hash", f"{field}: character {i} is {ch!r}; only "
                                 "hex digits 0-9 and a-f are allowed", field=field)
    return value.lower()


def _details(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InvalidRequest("invalid_details", f"details is not JSON: {exc.msg}",
                                 field="details") from exc
        if not isinstance(raw, dict):
            raise InvalidRequest("invalid_details", "details must be a JSON object",
                                 field="details")
    if len(json.dumps(raw)) > MAX_DETAILS_BYTES:
        raise InvalidRequest("invalid_details", f"details is larger than {MAX_DETAILS_BYTES} "
                             "bytes of JSON", field="details")
    return raw


def _hash_image(sandbox: Sandbox, image: bytes, timeout_s: float) -> EntryHashes:
    """Hash an image in the decoding sandbox; a bad, too complex or too slow image is a
    422 (413 when too large) naming the field ``image``."""
    try:
        return entry_hashes(sandbox.fingerprint(image, timeout_s=timeout_s))
    except ImageRejected as exc:
        raise InvalidRequest(exc.code, f"image: {exc}", field="image",
                             too_large=exc.too_large) from exc


async def _read_entry(request: Request) -> EntryAdd | tuple[bytes, EntryAdd]:
    """The body of an entry add: JSON, or multipart with an ``image`` file."""
    content_type = request.headers.get("content-type", "")
    if is_multipart(content_type):
        form = await read_form(request, max_files=2, max_fields=10)
        image = await form_file(form, "image", required=False)
        fields = {name: form_text(form, name)
                  for name in ("pdq", "md5", "external_id", "takedown_case")}
        details = _details(form_text(form, "details"))
        body = validate(EntryAdd, {**fields, "details": details})
        return (image, body) if image is not None else body
    require_json(content_type)
    body = parse_json(EntryAdd, await request.body())
    if body.image is not None:
        return decode_base64(body.image, "image"), body
    return body


# -- entries (declared first: /entries/{id} must not be taken for a bank name) ---------

_ENTRY = responses(*AUTH, 404, 422)


@router.get("/entries/{entry_id:int}", response_model=EntryView, summary="One bank entry",
            responses=_ENTRY)
async def get_entry(entry_id: EntryId, gate: GateDep, _: Admin) -> dict[str, Any]:
    return _live(await run_in_threadpool(gate.banks.registry.entry, entry_id)).to_dict()


@router.patch("/entries/{entry_id:int}", response_model=EntryView,
              summary="Enable or disable an entry (disabled entries never match)",
              responses=_ENTRY)
async def patch_entry(entry_id: EntryId, change: EnabledChange, gate: GateDep,
                      principal: Admin) -> dict[str, Any]:
    registry = gate.banks.registry
    _live(await run_in_threadpool(registry.entry, entry_id))
    return (await run_in_threadpool(registry.set_entry_enabled, entry_id, change.enabled,
                                    actor=principal.name)).to_dict()


@router.delete("/entries/{entry_id:int}", response_model=EntryView,
               summary="Remove an entry (recorded in the event log; it stops matching)",
               responses=_ENTRY)
async def delete_entry(entry_id: EntryId, gate: GateDep, principal: Admin,
                       reason: Annotated[str, Query(max_length=MAX_TEXT)] = "",
                       ) -> dict[str, Any]:
    registry = gate.banks.registry
    _live(await run_in_threadpool(registry.entry, entry_id))
    return (await run_in_threadpool(registry.remove_entry, entry_id, actor=principal.name,
                                    reason=reason)).to_dict()


# -- banks ----------------------------------------------------------------------------


@router.get("", response_model=BankList, summary="Every bank with its active entry count",
            responses=responses(*AUTH))
async def list_banks(gate: GateDep, _: Admin) -> dict[str, Any]:
    banks = await run_in_threadpool(gate.banks.registry.list)
    return {"banks": [b.to_dict() for b in banks]}


@router.post("", response_model=BankView, status_code=status.HTTP_201_CREATED,
             summary="Create a bank", responses=responses(*AUTH, 409, 422))
async def create_bank(body: BankCreate, gate: GateDep, principal: Admin) -> dict[str, Any]:
    return (await run_in_threadpool(gate.banks.registry.create, body.name, body.kind,
                                    body.category, description=body.description,
                                    actor=principal.name)).to_dict()


@router.get("/{name}", response_model=BankView, summary="One bank",
            responses=responses(*AUTH, 404))
async def get_bank(name: str, gate: GateDep, _: Admin) -> dict[str, Any]:
    return (await run_in_threadpool(gate.banks.registry.get, name)).to_dict()


@router.patch("/{name}", response_model=BankView,
              summary="Enable or disable a bank (a disabled bank never matches)",
              responses=responses(*AUTH, 404, 422))
async def patch_bank(name: str, change: EnabledChange, gate: GateDep,
                     principal: Admin) -> dict[str, Any]:
    return (await run_in_threadpool(gate.banks.registry.set_enabled, name, change.enabled,
                                    actor=principal.name)).to_dict()


@router.get("/{name}/entries", response_model=EntryPage,
            summary="A bank's entries, by id (removed entries are left out)",
            responses=responses(*AUTH, 404, 422))
async def list_entries(
    name: str, gate: GateDep, _: Admin,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="entries with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    entries = await run_in_threadpool(gate.banks.registry.entries, name, limit=limit,
                                      after_id=after, include_removed=False)
    return {"entries": [e.to_dict() for e in entries],
            "next_after": entries[-1].id if len(entries) == limit else None}


@router.post(
    "/{name}/entries", response_model=EntryView, status_code=status.HTTP_201_CREATED,
    summary="Bank an image (base64 or multipart 'image') or bare hashes {pdq, md5}",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": EntryAdd.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "image": {"type": "string", "format": "binary"},
            "pdq": {"type": "string"}, "md5": {"type": "string"},
            "external_id": {"type": "string"}, "takedown_case": {"type": "string"},
            "details": {"type": "string", "description": "a JSON object"}}}},
    }}},
    responses=responses(*AUTH, 404, 409, 413, 422, 503),
)
async def add_entry(name: str, request: Request, gate: GateDep,
                    principal: Admin) -> dict[str, Any]:
    """409 when the bank already holds the image or the external id: ``error.entry`` is
    the existing entry."""
    read = await _read_entry(request)
    image, body = read if isinstance(read, tuple) else (None, read)
    bare = body.pdq is not None or body.md5 is not None
    if image is not None and bare:
        raise InvalidRequest("ambiguous_entry", "send an image or bare hashes, not both",
                             field="image")
    if image is not None:
        hashes = await run_in_threadpool(_hash_image, gate.sandbox, image,
                                         gate.settings.analysis_timeout_s)
    elif bare:
        hashes = EntryHashes(
            pdq=strict_hex("pdq", body.pdq, 64) if body.pdq is not None else None,
            md5=strict_hex("md5", body.md5, 32) if body.md5 is not None else None)
    else:
        raise InvalidRequest("missing_image", "send an image, or a pdq and/or md5 hash",
                             field="image")
    if hashes.md5 is None and hashes.pdq is None:
        raise InvalidRequest("unhashable_image", "the image has no usable hash",
                             field="image")
    entry = await run_in_threadpool(
        gate.banks.registry.add_entry, name, hashes, source="manual",
        external_id=body.external_id, takedown_case=body.takedown_case,
        details=_details(body.details), actor=principal.name)
    return entry.to_dict()


@router.post("/{name}/sweep/{entry_id:int}", response_model=SweepResult,
             summary="Registered content that is this entry's image: the copies to take down",
             responses=responses(*AUTH, 404, 422))
async def sweep(name: str, entry_id: EntryId, gate: GateDep, _: Admin) -> dict[str, Any]:
    services = gate.banks
    entry = _live(await run_in_threadpool(entry_in_bank, services.registry, name, entry_id))
    copies = await run_in_threadpool(sweep_entry, services.registry, services.content, entry)
    return {"bank": name, "entry": entry.id, "copies": [c.to_dict() for c in copies]}
