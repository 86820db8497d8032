"""``POST /v1/check/generation``: JSON with base64 images, or multipart with files."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from consentry.access import Scope
from consentry.api.auth import require
from consentry.errors import InvalidRequest
from consentry.gate import MAX_IMAGES, Gate, Recording, Verdict
from consentry.http.bodies import decode_base64, parse_json, read_form, require_json
from consentry.http.deps import GateDep
from consentry.http.errors import AUTH, responses
from consentry.http.schemas.checks import GenerationCheck

router = APIRouter(prefix="/v1/check", tags=["check"])


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["prompt"],
    "properties": {
        "prompt": {"type": "string"},
        "account": {"type": "string"},
        "thread": {"type": "string"},
        "images": {"type": "array", "items": {"type": "string", "format": "binary"},
                   "maxItems": MAX_IMAGES},
    },
}


async def _read_request(
    request: Request,
) -> tuple[str, list[bytes], str | None, str | None]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await read_form(request, max_files=MAX_IMAGES + 1, max_fields=10)
        prompt = form.get("prompt")
        if not isinstance(prompt, str):
            raise InvalidRequest("missing_prompt", "the form has no 'prompt' field",
                                 field="prompt")
        account = form.get("account")
        thread = form.get("thread")
        files = form.getlist("images")
        if any(not isinstance(f, UploadFile) for f in files):
            raise InvalidRequest("invalid_image", "'images' fields must be files",
                                 field="images")
        if len(files) > MAX_IMAGES:
            raise InvalidRequest("too_many_images", f"{len(files)} images sent; at most "
                                 f"{MAX_IMAGES} are accepted per request", field="images")
        images = [await f.read() for f in files]  # type: ignore[union-attr]
        return (prompt, images, account if isinstance(account, str) and account else None,
                thread if isinstance(thread, str) and thread else None)
    require_json(content_type)
    body = parse_json(GenerationCheck, await request.body())
    if len(body.images) > MAX_IMAGES:
        raise InvalidRequest("too_many_images", f"{len(body.images)} images sent; at most "
                             f"{MAX_IMAGES} are accepted per request", field="images")
    images = [decode_base64(v, f"images[{i}]", f"image {i}") for i, v in enumerate(body.images)]
    return body.prompt, images, body.account, body.thread


@router.post(
    "/generation",
    response_model=Verdict,
    summary="Check a generation or edit request before the image model runs",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": GenerationCheck.model_json_schema()},
        "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
    }}},
    responses=responses(*AUTH, 409, 413, 422, 503),
    dependencies=[Depends(require(Scope.CHECK))],
)
async def check_generation(
    request: Request,
    gate: GateDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Verdict:
    """Any answer other than 200 means the request was not checked: do not run it. An
    ``Idempotency-Key`` (with an account) makes retries safe; reusing it for a different
    request is a 409."""
    prompt, images, account, thread = await _read_request(request)
    if not images and not thread and gate.records_in_batches:
        return await _text_check_on_the_loop(gate, prompt, account, idempotency_key)
    return await run_in_threadpool(gate.check_generation, prompt, images, account,
                                   idempotency_key=idempotency_key, thread=thread)


async def _text_check_on_the_loop(gate: Gate, prompt: str, account: str | None,
                                  key: str | None) -> Verdict:
    # A text-only check is decided on the event loop and its batch awaited there: in one
    # process the GIL lets one thread run at a time, so a thread per request added only
    # hand-offs, and under load its tail (docs/recording.md). Images (decoded in the
    # sandbox) and threads (their turns read) still go to the thread pool, as does a
    # check that writes its own transaction (one that costs the account something).
    recording = gate.begin_generation(prompt, (), account, idempotency_key=key)
    if not recording.queue_nowait():  # its own transaction, a replay, or a full queue
        return await run_in_threadpool(recording.verdict)
    await _committed(recording)
    return recording.verdict()  # committed: returns without waiting


async def _committed(recording: Recording) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle() -> None:  # on the event loop
        if not done.done():
            done.set_result(None)

    def wake() -> None:  # on the writing thread: only hands over
        loop.call_soon_threadsafe(settle)

    recording.when_recorded(wake)
    try:
        await asyncio.wait_for(done, recording.timeout_s)
    except TimeoutError:
        raise recording.not_in_time() from None
