"""Request-body helpers shared by the routers: base64 images, JSON bodies, form files.

Every failure is an ``InvalidRequest`` (422, or 413 for size), never a 500 and never a
verdict: the app's exception handler turns it into ``{"error": {code, field, message}}``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from consentry.errors import InvalidRequest

Model = TypeVar("Model", bound=BaseModel)


def decode_base64(value: str, field: str, what: str = "the image") -> bytes:
    """Strict base64 (no stray characters): a silently truncated image would be hashed
    as something else."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidRequest("invalid_base64", f"{what} is not valid base64",
                             field=field) from exc


def parse_json(model: type[Model], raw: bytes) -> Model:
    """Validate a JSON body against ``model``, naming the first offending field."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc) from exc


def validate(model: type[Model], data: dict[str, Any]) -> Model:
    """Validate already-parsed fields (a form) against ``model``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc


def _invalid(exc: ValidationError) -> InvalidRequest:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    return InvalidRequest("invalid_body", f"{field}: {first['msg']}", field=field)


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The request's form (multipart or urlencoded), or ``InvalidRequest`` naming the
    body when it cannot be parsed (a missing boundary, a truncated part, too many parts)."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields)
    except HTTPException as exc:
        raise InvalidRequest("invalid_body", f"the form cannot be read: {exc.detail}",
                             field="body") from exc


def is_multipart(content_type: str) -> bool:
    return content_type.startswith("multipart/form-data")


def require_json(content_type: str) -> None:
    if not content_type.startswith("application/json"):
        raise InvalidRequest("unsupported_media_type", "send application/json or "
                             "multipart/form-data", field="body")


async def form_file(form: FormData, name: str, *, required: bool = True) -> bytes | None:
    """The bytes of the one file sent in form field ``name``."""
    files = form.getlist(name)
    if not files:
        if required:
            raise InvalidRequest("missing_image", f"the form has no '{name}' file",
                                 field=name)
        return None
    if len(files) > 1:
        raise InvalidRequest("too_many_images", f"send one '{name}' file, not {len(files)}",
                             field=name)
    upload = files[0]
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("invalid_image", f"'{name}' must be a file, not a text field",
                             field=name)
    return await upload.read()


def form_text(form: FormData, name: str) -> str | None:
    """A text field of a form; an empty value counts as absent."""
    value = form.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest("invalid_body", f"'{name}' must be a text field, not a file",
                             field=name)
    return value


class BodyLimit:
    """ASGI middleware: a request whose declared length is over ``max_bytes`` is answered
    413 before its body is read. Plain ASGI rather than ``@app.middleware``, whose wrapper
    costs every request a task and a stream."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                response = JSONResponse({"error": {
                    "code": "body_too_large", "field": "body",
                    "message": f"the request body is {length} bytes; the limit is "
                               f"{self.max_bytes}"}}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
