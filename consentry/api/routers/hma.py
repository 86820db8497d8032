"""Endpoints shaped like Meta's Hasher-Matcher-Actioner (HMA 2.0, "OpenMediaMatch"), so
that a platform already calling HMA can point at Consentry instead.

Mirrored from HMA's ``blueprints/hashing.py`` (``/h/hash``) and ``blueprints/matching.py``
(``/m/lookup``): the same paths, parameters, signal-type names (``pdq``, ``video_md5``),
response shapes and 400 ``{"message": ...}`` errors. Differences (docs/hma-compat.md):
an API key with the ``check`` scope is required; URL fetching is off unless the host is
listed in CONSENTRY_HMA_FETCH_HOSTS, and then reaches public addresses only; photos only;
lookups of uploaded images also match rotated and mirrored copies (HMA looks up the single
PDQ hash).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from consentry.access import Scope
from consentry.api.auth import require
from consentry.api.safe_fetch import FetchPolicy, FetchRefused, fetch_image
from consentry.banks.matcher import BankMatch, BankMatcher
from consentry.banks.pdq_index import from_hex
from consentry.config import Settings
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.signals.image import MAX_IMAGE_BYTES, ImageRejected
from consentry.signals.sandbox import Sandbox

router = APIRouter(tags=["hma-compat"], dependencies=[Depends(require(Scope.CHECK))])


class HmaError(BaseModel):
    """HMA's error shape."""

    message: str


# HMA answers bad input with 400 {"message"}; auth failures use Consentry's error shape.
_HMA_ERRORS: dict[int | str, dict[str, Any]] = {
    **responses(*AUTH, 503),
    400: {"model": HmaError, "description": "bad input or a failed fetch (HMA's shape)"},
    413: {"model": HmaError, "description": "the image is too large (HMA's shape)"},
}

PHOTO = "photo"  # HMA's content type name for images (threatexchange PhotoContent)
# HMA's signal-type names. HMA has no MD5 for photos; StopNCII's and NCMEC's MD5s land in
# our md5 signal, which HMA calls video_md5. "md5" is accepted as Consentry's own name.
SIGNAL_TYPES = ("pdq", "video_md5", "md5")

Matches = dict[str, list[dict[str, Any]]]


class HmaAbort(Exception):
    """An HMA-style error: ``{"message": ...}`` with a 4xx status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _abort(exc: HmaAbort) -> JSONResponse:
    return JSONResponse({"message": str(exc)}, status_code=exc.status)


# -- hashing --------------------------------------------------------------------------


def _signal_types(types: str | None) -> list[str]:
    """HMA's ``types`` parameter: comma-separated signal types; default PDQ, as HMA hashes
    photos. ``md5`` adds the MD5 of the file."""
    if types is None:
        return ["pdq"]
    chosen = [t.strip() for t in types.split(",") if t.strip()]
    for name in chosen:
        if name not in ("pdq", "md5"):
            raise HmaAbort(400, f"signal type '{name}' doesn't exist or is disabled")
    if not chosen:
        raise HmaAbort(400, "empty signal type selection")
    return chosen


def _hash(sandbox: Sandbox, data: bytes, types: Sequence[str],
          timeout_s: float) -> dict[str, str]:
    try:
        hashes = sandbox.hashes(data, timeout_s=timeout_s)
    except ImageRejected as exc:  # also a decode that overran or crashed: still a 400
        raise HmaAbort(413 if exc.too_large else 400, str(exc)) from exc
    out = {}
    if "pdq" in types:
        # HMA answers "" for a hash too flat (quality < 50) to match reliably.
        out["pdq"] = hashes.pdq.hex if hashes.pdq is not None else ""
    if "md5" in types:
        out["md5"] = hashes.md5 or ""
    return out


def _check_content_type(content_type: str | None) -> None:
    if content_type is not None and content_type != PHOTO:
        raise HmaAbort(400, f"no such content_type: '{content_type}' (Consentry hashes "
                            "photos only)")


def _fetch(url: str, settings: Settings) -> bytes:
    """Download an image for ``?url=`` within the operator's fetch policy (see
    consentry.api.safe_fetch: allowed hosts, public addresses, no redirects, one deadline,
    the image size limit)."""
    if not settings.hma_fetch_hosts:
        raise HmaAbort(400, "fetching URLs is disabled on this server (set "
                            "CONSENTRY_HMA_FETCH_HOSTS), upload the file instead")
    policy = FetchPolicy(
        allowed_hosts=settings.hma_fetch_hosts,
        allowed_networks=tuple(ipaddress.ip_network(n) for n in settings.hma_fetch_networks),
        deadline_s=settings.hma_fetch_timeout_s,
        max_bytes=MAX_IMAGE_BYTES,
    )
    try:
        return fetch_image(url, policy)
    except FetchRefused as exc:
        raise HmaAbort(exc.status, str(exc)) from exc


@router.get("/h/hash", summary="HMA: hash the image at a URL -> {signal_type: hash}",
             responses=_HMA_ERRORS)
async def hash_url(
    gate: GateDep,
    url: Annotated[str | None, Query()] = None,
    content_type: Annotated[str | None, Query()] = None,
    types: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    try:
        if url is None:
            raise HmaAbort(400, "url is required")
        _check_content_type(content_type)
        chosen = _signal_types(types)
        data = await run_in_threadpool(_fetch, url, gate.settings)
        return JSONResponse(await run_in_threadpool(_hash, gate.sandbox, data, chosen,
                                                    gate.settings.analysis_timeout_s))
    except HmaAbort as exc:
        return _abort(exc)


async def _uploaded_photo(request: Request) -> bytes:
    """HMA's multipart convention: one file, in a field named after its content type."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise HmaAbort(400, "Missing multipart/form-data file upload")
    try:
        form = await request.form(max_files=2, max_fields=5)
    except HTTPException as exc:  # an unreadable body: HMA's 400, not our 422
        raise HmaAbort(400, f"Malformed multipart/form-data upload: {exc.detail}") from exc
    files = [(name, value) for name, value in form.multi_items()
             if isinstance(value, UploadFile)]
    if not files:
        raise HmaAbort(400, "Missing multipart/form-data file upload")
    if len(files) > 1:
        raise HmaAbort(400, "Only one file allowed per request")
    name, upload = files[0]
    _check_content_type(name)
    return await upload.read()


@router.post("/h/hash", summary="HMA: hash an uploaded photo (multipart field 'photo')",
             responses=_HMA_ERRORS)
async def hash_upload(
    request: Request, gate: GateDep, types: Annotated[str | None, Query()] = None,
) -> JSONResponse:
    try:
        chosen = _signal_types(types)
        data = await _uploaded_photo(request)
        return JSONResponse(await run_in_threadpool(_hash, gate.sandbox, data, chosen,
                                                    gate.settings.analysis_timeout_s))
    except HmaAbort as exc:
        return _abort(exc)


# -- matching -------------------------------------------------------------------------


def _by_bank(found: Sequence[BankMatch], banks: set[str] | None) -> Matches:
    """HMA's lookup shape: bank name -> [{bank_content_id, distance}] (distance as a
    string, as HMA's ``pretty_str`` writes it)."""
    out: Matches = {}
    for m in found:
        if banks is None or m.bank in banks:
            out.setdefault(m.bank, []).append(
                {"bank_content_id": m.entry_id, "distance": str(m.distance)})
    return out


def _lookup_signal(matcher: BankMatcher, signal: str, signal_type: str,
                   banks: set[str] | None) -> Matches:
    if signal_type not in SIGNAL_TYPES:
        raise HmaAbort(400, f"No such SignalType '{signal_type}'")
    length = 64 if signal_type == "pdq" else 32
    value = signal.lower()
    if len(value) != length:
        raise HmaAbort(400, f"invalid signal: a {signal_type} hash is {length} hex "
                            f"characters, got {len(value)}")
    bad = next((i for i, c in enumerate(value) if c not in "0123456789abcdef"), None)
    if bad is not None:
        raise HmaAbort(400, f"invalid signal: character {bad} is {signal[bad]!r}, not a "
                            "hex digit")
    if signal_type == "pdq":
        return _by_bank(matcher.match(None, from_hex([value])), banks)
    return _by_bank(matcher.match(value, None), banks)


def _lookup_image(matcher: BankMatcher, sandbox: Sandbox, data: bytes,
                  banks: set[str] | None, timeout_s: float) -> dict[str, Matches]:
    """Look an image up as HMA does (keyed by signal type), but with every rotation,
    mirror and crop variant of its PDQ hash: a rotated copy matches too."""
    try:
        fp = sandbox.fingerprint(data, timeout_s=timeout_s)
    except ImageRejected as exc:
        raise HmaAbort(413 if exc.too_large else 400, str(exc)) from exc
    queries = fp.query_array()
    pdq = matcher.match(None, queries) if len(queries) else []
    return {"pdq": _by_bank(pdq, banks)}


def _banks(value: str | None) -> set[str] | None:
    return {b.strip() for b in value.split(",") if b.strip()} if value else None


@router.get("/m/lookup", summary="HMA: banks matching a hash (or the image at a URL)",
             responses=_HMA_ERRORS)
async def lookup(
    gate: GateDep,
    signal: Annotated[str | None, Query()] = None,
    signal_type: Annotated[str | None, Query()] = None,
    url: Annotated[str | None, Query()] = None,
    content_type: Annotated[str | None, Query()] = None,
    banks: Annotated[str | None, Query(description="comma-separated bank names")] = None,
    seed: Annotated[str | None, Query(description="accepted for HMA clients; unused")] = None,
    bypass_coinflip: Annotated[bool, Query(description="accepted; unused")] = False,
) -> JSONResponse:
    matcher = gate.banks.matcher
    try:
        if url:
            _check_content_type(content_type)
            data = await run_in_threadpool(_fetch, url, gate.settings)
            by_type = await run_in_threadpool(_lookup_image, matcher, gate.sandbox, data,
                                              _banks(banks), gate.settings.analysis_timeout_s)
            # As HMA: naming a signal type elides the outer object.
            if signal_type is not None:
                return JSONResponse(by_type.get(signal_type, {}))
            return JSONResponse(by_type)
        if not signal or not signal_type:
            raise HmaAbort(400, "Either url or both signal and signal_type are required")
        return JSONResponse(await run_in_threadpool(_lookup_signal, matcher, signal,
                                                    signal_type, _banks(banks)))
    except HmaAbort as exc:
        return _abort(exc)


@router.post("/m/lookup", summary="HMA: banks matching an uploaded photo, by signal type",
             responses=_HMA_ERRORS)
async def lookup_upload(
    request: Request,
    gate: GateDep,
    banks: Annotated[str | None, Query(description="comma-separated bank names")] = None,
    seed: Annotated[str | None, Query(description="accepted for HMA clients; unused")] = None,
    bypass_coinflip: Annotated[bool, Query(description="accepted; unused")] = False,
) -> JSONResponse:
    try:
        data = await _uploaded_photo(request)
        return JSONResponse(await run_in_threadpool(_lookup_image, gate.banks.matcher,
                                                    gate.sandbox, data, _banks(banks),
                                                    gate.settings.analysis_timeout_s))
    except HmaAbort as exc:
        return _abort(exc)
