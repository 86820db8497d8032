"""Errors over HTTP, in one place: the error body every endpoint answers with, the
OpenAPI description of each status, and the exception handlers that map the package's
errors (``consentry.errors``) to statuses once for every router and page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from consentry.errors import (
    Conflict,
    ConsentryError,
    Forbidden,
    InvalidRequest,
    NotFound,
    TooManyAttempts,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

# Renders an error as a page for the pages under a path (the console); None: the client
# wants JSON, which it then gets in the one error shape.
ErrorPage = Callable[[Request, ConsentryError, int], Response | None]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. "entry": the entry that holds a hash

    code: str = Field(description="machine-readable, e.g. invalid_image, duplicate_entry")
    message: str = Field(description="what is wrong and how to fix it")
    field: str | None = Field(default=None, description="the offending input, if one is")


class ErrorOut(BaseModel):
    error: ErrorDetail


_DESCRIPTIONS: dict[int, str] = {
    401: "missing, unknown or revoked API key",
    403: "the API key lacks the scope this endpoint needs",
    404: "no such item",
    409: "the request clashes with what is recorded (reused idempotency key, an id naming "
         "other content, an action the current state does not allow)",
    413: "an image or the body is too large",
    422: "the request cannot be handled as sent; error.field names the input",
    429: "too many attempts from this client; see Retry-After",
    503: ("busy (too many images being decoded, a batch not committed in time) or the "
          "database not answering; retry after Retry-After. Never an allow"),
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, all in the one error shape."""
    return {s: {"model": ErrorOut, "description": _DESCRIPTIONS[s]} for s in statuses}


AUTH = (401, 403)


def error_response(status: int, body: dict[str, Any],
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def status_of(exc: ConsentryError) -> int:
    """The HTTP status of a package error."""
    if isinstance(exc, InvalidRequest):
        return 413 if exc.too_large else 422
    for kind, status in ((Unauthenticated, 401), (Forbidden, 403), (NotFound, 404),
                         (Conflict, 409), (TooManyAttempts, 429), (Unavailable, 503)):
        if isinstance(exc, kind):
            return status
    return 422  # any other error a caller can fix is bad input


def retry_after(exc: ConsentryError) -> dict[str, str] | None:
    """The ``Retry-After`` header a limit or an overload answer carries."""
    seconds = getattr(exc, "retry_after_s", None)
    return {"Retry-After": str(seconds)} if seconds else None


def install(app: FastAPI, *, pages: Mapping[str, ErrorPage] | None = None) -> None:
    """Map every error to its status and the one error shape; under each path prefix of
    ``pages``, its renderer may answer with a page instead (same status)."""

    @app.exception_handler(ConsentryError)
    async def package_error(request: Request, exc: ConsentryError) -> Response:
        for prefix, render in (pages or {}).items():
            if request.url.path == prefix or request.url.path.startswith(prefix + "/"):
                page = render(request, exc, status_of(exc))
                if page is not None:
                    return page
        body = exc.to_dict()
        if not isinstance(exc, InvalidRequest) and status_of(exc) == 422:
            body.setdefault("field", "body")
        return error_response(status_of(exc), body, retry_after(exc))

    async def database_unavailable(request: Request, exc: Exception) -> Response:
        # The database did not answer: a read past its timeout, a lost connection, a lock
        # given up on. Fail closed with a retry rather than a bare 500. Only the error's
        # class is logged: a statement's parameters can hold personal data.
        log.warning("database unavailable (%s); answered 503",
                    type(getattr(exc, "orig", None) or exc).__name__)
        return await package_error(request, Unavailable(
            "the database did not answer in time; treat the request as not done and retry "
            "it (with the same Idempotency-Key where one was sent)",
            code="database_unavailable"))

    app.add_exception_handler(OperationalError, database_unavailable)
    app.add_exception_handler(InterfaceError, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def unprocessable(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        return error_response(422, {"code": "invalid_request", "field": field,
                                    "message": f"{field}: {first['msg']}"})

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # Starlette's body parsers answer 400 for a body they cannot read (malformed
            # multipart): bad input, in the documented shape.
            return error_response(422, {"code": "invalid_body", "field": "body",
                                        "message": f"the body cannot be read: {exc.detail}"})
        detail = exc.detail if isinstance(exc.detail, dict) else {
            "code": "http_error", "message": str(exc.detail)}
        return JSONResponse({"error": detail}, status_code=exc.status_code,
                            headers=exc.headers)
