"""Headers every response under a path must carry (the console's security headers), added
where the response starts, so redirects, error pages and pages alike get them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The console shows people's and victims' details: nothing is cached, framed, referred
# or loaded from elsewhere, and no inline script or style runs.
CONSOLE_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "Cross-Origin-Opener-Policy": "same-origin",
}


class PathHeaders:
    """ASGI middleware: set ``headers`` on every HTTP response under ``prefix``."""

    def __init__(self, app: ASGIApp, *, prefix: str, headers: Mapping[str, str]) -> None:
        self.app = app
        self.prefix = prefix
        self.headers = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
