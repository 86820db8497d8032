"""``POST /v1/check/generation``: JSON with base64 images, or multipart with files."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile

from consentry.access import Scope
from consentry.api.auth import require
from consentry.gate import MAX_IMAGES, MAX_PROMPT_CHARS, InvalidRequest, Verdict

router = APIRouter(prefix="/v1/check", tags=["check"])


class GenerationCheck(BaseModel):
    """A generation or edit request, as the platform is about to run it."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(description=f"the user's prompt, 1-{MAX_PROMPT_CHARS} characters")
    images: list[str] = Field(default_factory=list,
                              description=f"input photos as base64, at most {MAX_IMAGES}")
    account: str | None = Field(default=None, description="the platform's account id")


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string"},
        "account": {"type": "string"},
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "maxItems": MAX_IMAGES},
    },
}


def _decode_base64(index: int, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("invalid_base64", f"image {index} is not valid base64",
                             field=f"images[{index}]") from exc


async def _read_request(request: Request) -> tuple[str, list[bytes], str | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=MAX_IMAGES + 1, max_fields=10)
        prompt = form.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequest("missing_prompt", "the form has no 'prompt' field",
                                 field="prompt")
        account = form.get("account")
        files = form.getlist("images")
        if any(not isinstance(f, UploadFile) for f in files):
            raise InvalidRequest("invalid_image", "'images' fields must be files",
                                 field="images")
        if len(files) > MAX_IMAGES:
            raise InvalidRequest("too_many_images", f"{len(files)} images sent; at most "
                                 f"{MAX_IMAGES} are accepted per request", field="images")
        images = [await f.read() for f in files]  # type: ignore[union-attr]
        return prompt, images, account if isinstance(account, str) and account else None
    if not content_type.startswith("application/json"):
        raise InvalidRequest("unsupported_media_type", "send application/json or "
                             "multipart/form-data", field="body")
    try:
        body = GenerationCheck.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequest("invalid_body", f"{field}: {first['msg']}", field=field) from exc
    if len(body.images) > MAX_IMAGES:
        raise InvalidRequest("too_many_images", f"{len(body.images)} images sent; at most "
                             f"{MAX_IMAGES} are accepted per request", field="images")
    return body.prompt, [_decode_base64(i, v) for i, v in enumerate(body.images)], body.account


@router.post(
    "/generation",
    response_model=Verdict,
    summary="Check a generation or edit request before the image model runs",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": GenerationCheck.model_json_schema()},
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
    }}},
    responses={401: {"description": "missing or invalid API key"},
               403: {"description": "the key lacks the 'check' scope"},
               413: {"description": "an image or the body is too large"},
               422: {"description": "the request cannot be checked as sent"}},
    dependencies=[Depends(require(Scope.CHECK))],
)
async def check_generation(
    request: Request,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Verdict:
    prompt, images, account = await _read_request(request)
    gate = request.app.state.gate
    return await run_in_threadpool(gate.check_generation, prompt, images, account,
                                   idempotency_key=idempotency_key)
