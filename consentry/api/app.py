"""The FastAPI application. OpenAPI at /openapi.json is the contract."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from consentry import __version__
from consentry.api.auth import KeyCache
from consentry.api.routers import accounts, banks, check, hma, media
from consentry.api.routers import takedowns as takedowns_api
from consentry.api.throttle import ClientThrottle
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.gate import Gate, InvalidRequest
from consentry.signals.sandbox import SandboxBusy
from consentry.store import Database
from consentry.web import takedown as takedown_pages
from consentry.web.takedown import STATIC_DIR

# Four 40-megapixel images as base64 fit well inside this; anything larger is refused
# before it is read.
MAX_BODY_BYTES = 256 * 1024 * 1024


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status)


def create_app(settings: Settings | None = None, *, gate: Gate | None = None,
               takedowns: TakedownService | None = None) -> FastAPI:
    """Build the app. With no ``gate``, one is made from ``settings`` (migrating the
    database and loading the models at startup); likewise the takedown service, whose
    callback retries then run on a background thread."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = gate is None
        if owned:
            db = Database(settings.resolved_database_url)
            db.migrate()
            app.state.gate = Gate(db, settings=settings)
            app.state.gate.warm_up()
        else:
            app.state.gate = gate
        app.state.keys = KeyCache(app.state.gate.db)
        app.state.pin_throttle = ClientThrottle(limit=20, window_s=900)
        app.state.submit_throttle = ClientThrottle(limit=30, window_s=3600)
        g = app.state.gate
        app.state.takedowns = takedowns or TakedownService.from_settings(
            g.db, g.banks, g.policy, settings, sandbox=g.sandbox)
        stop = threading.Event()
        retries = threading.Thread(target=app.state.takedowns.run_retries, args=(stop,),
                                   name="takedown-retries", daemon=True)
        retries.start()
        yield
        stop.set()
        retries.join(timeout=10)
        if takedowns is None:
            app.state.takedowns.close()
        if owned:
            app.state.gate.close()
            app.state.gate.db.dispose()

    app = FastAPI(title="Consentry", version=__version__, lifespan=lifespan,
                  description="Safety gate against non-consensual intimate imagery and the "
                              "sexualisation of minors in generative-image platforms.")
    app.include_router(check.router)
    app.include_router(accounts.router)
    app.include_router(media.router)
    app.include_router(banks.router)
    app.include_router(hma.router)
    app.include_router(takedowns_api.router)
    app.include_router(takedown_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, "body_too_large",
                          f"the request body is {length} bytes; the limit is {MAX_BODY_BYTES}")
        return await call_next(request)

    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return _error(413 if exc.too_large else 422, exc.code, str(exc), exc.field)

    @app.exception_handler(SandboxBusy)
    async def busy(_: Request, exc: SandboxBusy) -> JSONResponse:
        # Admission control of the image decoders: nothing was checked, try again soon.
        response = _error(503, "busy", str(exc))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def unprocessable(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return _error(422, "invalid_request", f"{field}: {first['msg']}", field)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, dict) else {
            "code": "http_error", "message": str(exc.detail)}
        return JSONResponse({"error": detail}, status_code=exc.status_code,
                            headers=exc.headers)

    return app
