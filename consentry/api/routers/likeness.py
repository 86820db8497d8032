"""``/v1/likeness/{account_id}``: the platform enrols a verified person's face, reads,
changes and withdraws that one entry. There is no listing or search: who is enrolled is
never revealed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from consentry.access import Principal, Scope
from consentry.api.auth import require
from consentry.errors import InvalidRequest
from consentry.gate.service import MAX_ACCOUNT_ID
from consentry.http.bodies import is_multipart, parse_json, read_form, require_json
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.likeness import LikenessChange, LikenessView
from consentry.likeness.registry import MAX_PHOTOS, Enrolment

router = APIRouter(prefix="/v1/likeness", tags=["likeness"])
_KEY = require(Scope.LIKENESS)

_MULTIPART_SCHEMA = {
    "type": "object", "required": ["photos"],
    "properties": {
        "photos": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "minItems": 2, "maxItems": MAX_PHOTOS},
        "no_edits": {"type": "boolean"},
    },
}


def _view(enrolment: Enrolment) -> LikenessView:
    return LikenessView.model_validate(enrolment.to_dict())


def _account(account_id: str) -> str:
    if not account_id.strip() or len(account_id) > MAX_ACCOUNT_ID \
            or not account_id.isprintable():
        raise InvalidRequest("invalid_account", "the account must be 1 to "
                             f"{MAX_ACCOUNT_ID} printable characters", field="account_id")
    return account_id


def _flag(value: object) -> bool:
    if value in (None, "", "false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise InvalidRequest("invalid_no_edits", "no_edits must be true or false",
                         field="no_edits")


@router.post("/{account_id}", response_model=LikenessView, status_code=201,
             summary="Enrol the account's face from two or more photos",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "multipart/form-data": {"schema": _MULTIPART_SCHEMA}}}},
             responses=responses(*AUTH, 409, 413, 422, 503))
async def enrol(account_id: str, request: Request, gate: GateDep,
                key: Principal = Depends(_KEY)) -> LikenessView:  # noqa: B008
    account = _account(account_id)
    if not is_multipart(request.headers.get("content-type", "")):
        raise InvalidRequest("unsupported_media_type", "send the photos as "
                             "multipart/form-data files named 'photos'", field="body")
    form = await read_form(request, max_files=MAX_PHOTOS + 1, max_fields=5)
    files = form.getlist("photos")
    if any(not isinstance(f, UploadFile) for f in files):
        raise InvalidRequest("invalid_photo", "'photos' fields must be files", field="photos")
    photos = [await f.read() for f in files]  # type: ignore[union-attr]
    no_edits = _flag(form.get("no_edits"))
    enrolment = await run_in_threadpool(gate.likeness.enrol, account, photos,
                                        no_edits=no_edits, actor=f"api:{key.key_id}")
    return _view(enrolment)


@router.get("/{account_id}", response_model=LikenessView,
            summary="The account's own entry: status, settings, photo count, dates",
            responses=responses(*AUTH, 404), dependencies=[Depends(_KEY)])
async def read(account_id: str, gate: GateDep) -> LikenessView:
    return _view(await run_in_threadpool(gate.likeness.get, _account(account_id)))


@router.patch("/{account_id}", response_model=LikenessView,
              summary="Change the optional protection (no edits by others)",
              responses=responses(*AUTH, 404, 422))
async def change(account_id: str, request: Request, gate: GateDep,
                 key: Principal = Depends(_KEY)) -> LikenessView:  # noqa: B008
    require_json(request.headers.get("content-type", ""))
    body = parse_json(LikenessChange, await request.body())
    return _view(await run_in_threadpool(gate.likeness.change, _account(account_id),
                                         no_edits=body.no_edits, actor=f"api:{key.key_id}"))


@router.delete("/{account_id}", response_model=LikenessView,
               summary="Withdraw: protection ends and every embedding is erased at once",
               responses=responses(*AUTH, 404))
async def withdraw(account_id: str, gate: GateDep,
                   key: Principal = Depends(_KEY)) -> LikenessView:  # noqa: B008
    return _view(await run_in_threadpool(gate.likeness.withdraw, _account(account_id),
                                         actor=f"api:{key.key_id}"))
