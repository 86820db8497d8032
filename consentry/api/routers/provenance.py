"""``POST /v1/outputs/{check_id}/provenance``: an allowed output, watermarked and signed
with the platform's C2PA manifest (docs/provenance.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool

from consentry.access import Scope
from consentry.api.auth import require
from consentry.http.bodies import (
    decode_base64,
    form_file,
    is_multipart,
    parse_json,
    read_form,
    require_json,
)
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.checks import OutputImage

router = APIRouter(prefix="/v1/outputs", tags=["provenance"])


@router.post(
    "/{check_id}/provenance",
    summary="Fetch an allowed output with its watermark and signed C2PA manifest",
    response_class=Response,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": OutputImage.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                           "properties": {"image": {"type": "string",
                                                                    "format": "binary"}}}},
    }}},
    responses={**responses(*AUTH, 404, 409, 413, 422, 503),
               200: {"content": {"image/jpeg": {}, "image/png": {}},
                     "description": "the marked image"}},
    dependencies=[Depends(require(Scope.CHECK))],
)
async def mark_output(check_id: str, request: Request, gate: GateDep) -> Response:
    """Send the very bytes ``check_id`` checked (an allowed output). Unknown check: 404;
    refused or held, or not an output: 409; other bytes: 422; no signing key: 503."""
    content_type = request.headers.get("content-type", "")
    if is_multipart(content_type):
        image = await form_file(await read_form(request, max_files=1, max_fields=2), "image")
    else:
        require_json(content_type)
        image = decode_base64(parse_json(OutputImage, await request.body()).image, "image")
    assert image is not None
    marked = await run_in_threadpool(gate.mark_output, check_id, image)
    return Response(marked.content, media_type=marked.media_type,
                    headers={"Cache-Control": "no-store"})
