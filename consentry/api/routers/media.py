"""``POST /v1/check/upload`` and ``POST /v1/check/output``: one image, as base64 in JSON or
as a multipart file, checked against the banks and the image analysis."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool

from consentry.access import Scope
from consentry.api.auth import require
from consentry.gate import Verdict
from consentry.http.bodies import (
    decode_base64,
    form_file,
    form_text,
    is_multipart,
    parse_json,
    read_form,
    require_json,
)
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.checks import OutputCheck, UploadCheck

router = APIRouter(prefix="/v1/check", tags=["check"])


def _multipart_schema(fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["image"], "properties": {
        "image": {"type": "string", "format": "binary"}, **fields}}



async def _read(request: Request, model: type[UploadCheck] | type[OutputCheck],
                fields: tuple[str, ...]) -> tuple[bytes, dict[str, str | None]]:
    content_type = request.headers.get("content-type", "")
    if is_multipart(content_type):
        form = await read_form(request, max_files=2, max_fields=10)
        image = await form_file(form, "image")
        assert image is not None
        return image, {name: form_text(form, name) for name in fields}
    require_json(content_type)
    body = parse_json(model, await request.body())
    return decode_base64(body.image, "image"), {name: getattr(body, name) for name in fields}


@router.post(
    "/upload",
    response_model=Verdict,
    summary="Check an upload: bank match (known abuse, victims' hashes) and image analysis",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": UploadCheck.model_json_schema()},
        "multipart/form-data": {"schema": _multipart_schema({
            "account": {"type": "string"}, "content_id": {"type": "string"},
            "url": {"type": "string"}})},
    }}},
    responses=responses(*AUTH, 409, 413, 422, 503),
    dependencies=[Depends(require(Scope.CHECK))],
)
async def check_upload(
    request: Request,
    gate: GateDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Verdict:
    """A ``content_id`` names one image: reusing it for other bytes is a 409."""
    image, f = await _read(request, UploadCheck, ("account", "content_id", "url"))
    return await run_in_threadpool(gate.check_upload, image, f["account"], f["content_id"],
                                   url=f["url"], idempotency_key=idempotency_key)


@router.post(
    "/output",
    response_model=Verdict,
    summary="Check a generated image before it is shown; refused outputs are banked",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": OutputCheck.model_json_schema()},
        "multipart/form-data": {"schema": _multipart_schema({
            "generation_id": {"type": "string"}})},
    }}},
    responses=responses(*AUTH, 409, 413, 422, 503),
    dependencies=[Depends(require(Scope.CHECK))],
)
async def check_output(
    request: Request,
    gate: GateDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Verdict:
    """``generation_id`` must be a generation that was allowed: unknown is a 422, refused
    or held a 409 (its output must not exist)."""
    image, f = await _read(request, OutputCheck, ("generation_id",))
    return await run_in_threadpool(gate.check_output, image, f["generation_id"],
                                   idempotency_key=idempotency_key)
