"""The console's page layout, shared by every console page: templates under
``templates/console/`` extend ``console/base.html`` (header with the signed-in person's
name and roles, navigation, the logout button with its CSRF token, a skip link), and
render through ``console_page``. The security headers are added by the app for
everything under ``/console`` (``consentry.http.headers``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from consentry.people import LiveSession
from consentry.people.roles import may_manage_people

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def console_page(request: Request, name: str, session: LiveSession | None, *,
                 title: str, status_code: int = 200, headers: dict[str, str] | None = None,
                 **context: Any) -> HTMLResponse:
    """Render ``console/<name>`` in the layout. ``session``: the signed-in person's
    (None on the sign-in pages: no name, no navigation)."""
    signed_in = session if session is not None and session.verified else None
    return templates.TemplateResponse(request, f"console/{name}", {
        "title": title, "session": signed_in,
        "person": signed_in.person if signed_in else None,
        "roles": sorted(r.value for r in signed_in.person.roles) if signed_in else [],
        "manages_people": bool(signed_in and may_manage_people(signed_in.person.roles)),
        **context}, status_code=status_code, headers=headers)
