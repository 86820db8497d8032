"""The console's sign-in pages and the pages of one's own account: ``/console/login``
(username and password), ``/console/login/code`` (the TOTP step), ``/console/logout``,
``/console/account`` (password, second factor), ``/console/people`` (administrators: who
may sign in). The landing page ``/console`` is the review home (``console_review``).
No JavaScript; every form posts back with the session's CSRF token
(``consentry.http.deps``).

``error_page`` renders the package's errors for everything under ``/console``: not
signed in becomes a redirect to the sign-in page, a missing role or CSRF token a 403
page, a limit a 429 page with ``Retry-After``.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from consentry.errors import (
    ConsentryError,
    Forbidden,
    InvalidRequest,
    TooManyAttempts,
    Unauthenticated,
)
from consentry.http.bodies import read_form
from consentry.http.deps import (
    SESSION_COOKIE,
    ClientDep,
    CsrfSession,
    CsrfUser,
    CurrentUser,
    PeopleDep,
    SettingsDep,
    require_roles,
    same_origin,
)
from consentry.http.errors import retry_after
from consentry.people import LiveSession, Role
from consentry.people.directory import TotpOffer
from consentry.web.console_layout import console_page

router = APIRouter(prefix="/console", include_in_schema=False)

HOME = "/console"
LOGIN = "/console/login"
CODE = "/console/login/code"
_NOTICES = {"password": "Your password is changed. Every other session of yours has ended.",
            "totp": "Your authenticator app is set up: you will be asked for a code each time "
                    "you sign in."}


def _next(value: object) -> str:
    """Where to go after signing in: a console page, never another site or the sign-in
    pages themselves."""
    target = value if isinstance(value, str) else ""
    if (not target.startswith(HOME) or target.startswith(LOGIN) or "//" in target
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return HOME
    return target


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


def _set_session(response: Response, token: str, secure: bool) -> None:
    # No Max-Age: the cookie dies with the browser; the server ends the session anyway.
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict",
                        path=HOME, secure=secure)


def _clear_session(response: Response, secure: bool) -> None:
    response.delete_cookie(SESSION_COOKIE, path=HOME, httponly=True, samesite="strict",
                           secure=secure)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _error(anchor: str, message: str) -> dict[str, str]:
    return {"anchor": anchor, "message": _sentence(message)}


# -- signing in ---------------------------------------------------------------------------


def _login_page(request: Request, *, next_url: str, username: str = "",
                errors: list[dict[str, str]] | None = None, status_code: int = 200,
                notice: str | None = None,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    return console_page(request, "login.html", None, title="Sign in", status_code=status_code,
                        headers=headers, next_url=next_url, username=username,
                        errors=errors or [], notice=notice)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, people: PeopleDep, next: str = HOME,
               signed_out: bool = False) -> Response:
    session = people.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is not None and session.verified:
        return _see_other(_next(next))
    return _login_page(request, next_url=_next(next),
                       notice="You are signed out." if signed_out else None)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, people: PeopleDep, settings: SettingsDep,
                client: ClientDep) -> Response:
    form = await read_form(request, max_files=0, max_fields=10)
    username, password = _text(form, "username"), _text(form, "password")
    next_url = _next(form.get("next"))
    if not same_origin(request):
        raise Forbidden("this sign-in did not come from the console's own page",
                        code="cross_site")
    errors = ([_error("username", "enter your username")] if not username.strip() else []) + \
        ([_error("password", "enter your password")] if not password else [])
    if errors:
        return _login_page(request, next_url=next_url, username=username, errors=errors,
                           status_code=422)
    try:
        person = await run_in_threadpool(people.directory.authenticate, username, password,
                                         client=client)
    except (Unauthenticated, TooManyAttempts) as exc:
        return _login_page(request, next_url=next_url, username=username,
                           errors=[_error("username", str(exc))],
                           status_code=429 if isinstance(exc, TooManyAttempts) else 401,
                           headers=retry_after(exc))
    issued = await run_in_threadpool(people.sessions.start, person.id,
                                     verified=not person.has_totp,
                                     replacing=request.cookies.get(SESSION_COOKIE))
    response = _see_other(next_url if issued.verified
                          else f"{CODE}?next={quote(next_url, safe='/')}")
    _set_session(response, issued.token, settings.secure_cookies)
    return response


def _code_page(request: Request, session: LiveSession, *, next_url: str,
               errors: list[dict[str, str]] | None = None, status_code: int = 200,
               headers: dict[str, str] | None = None) -> HTMLResponse:
    return console_page(request, "code.html", None, title="Enter your code",
                        status_code=status_code, headers=headers, next_url=next_url,
                        csrf_token=session.csrf_token, errors=errors or [])


@router.get("/login/code", response_class=HTMLResponse)
def code_form(request: Request, people: PeopleDep, next: str = HOME) -> Response:
    session = people.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return _see_other(LOGIN)
    if session.verified:
        return _see_other(_next(next))
    return _code_page(request, session, next_url=_next(next))


@router.post("/login/code", response_class=HTMLResponse)
async def give_code(request: Request, session: CsrfSession, people: PeopleDep,
                    settings: SettingsDep, client: ClientDep) -> Response:
    form = await read_form(request, max_files=0, max_fields=10)
    next_url = _next(form.get("next"))
    if session.verified:
        return _see_other(next_url)
    try:
        await run_in_threadpool(people.directory.verify_code, session.person.id,
                                _text(form, "code"), client=client)
    except (Unauthenticated, TooManyAttempts) as exc:
        if exc.code == "sign_in_required":
            return _see_other(LOGIN)
        return _code_page(request, session, next_url=next_url,
                          errors=[_error("code", str(exc))],
                          status_code=429 if isinstance(exc, TooManyAttempts) else 401,
                          headers=retry_after(exc))
    issued = await run_in_threadpool(people.sessions.start, session.person.id, verified=True,
                                     replacing=request.cookies.get(SESSION_COOKIE))
    response = _see_other(next_url)
    _set_session(response, issued.token, settings.secure_cookies)
    return response


@router.post("/logout")
def logout(request: Request, session: CsrfSession, people: PeopleDep,
           settings: SettingsDep) -> Response:
    people.sessions.end(request.cookies.get(SESSION_COOKIE))
    response = _see_other(f"{LOGIN}?signed_out=1")
    _clear_session(response, settings.secure_cookies)
    return response


# -- the signed-in person -----------------------------------------------------------------


def _account_page(request: Request, user: LiveSession, *, offer: TotpOffer | None = None,
                  errors: list[dict[str, str]] | None = None, status_code: int = 200,
                  notice: str | None = None,
                  headers: dict[str, str] | None = None) -> HTMLResponse:
    secret_groups = (" ".join(offer.secret[i:i + 4] for i in range(0, len(offer.secret), 4))
                     if offer else None)
    return console_page(request, "account.html", user, title="Your account",
                        status_code=status_code, headers=headers, offer=offer,
                        secret_groups=secret_groups, errors=errors or [], notice=notice)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, user: CurrentUser, changed: str | None = None) -> HTMLResponse:
    return _account_page(request, user, notice=_NOTICES.get(changed or ""))


@router.post("/account/password", response_class=HTMLResponse)
async def change_password(request: Request, user: CsrfUser, people: PeopleDep,
                          settings: SettingsDep, client: ClientDep) -> Response:
    form = await read_form(request, max_files=0, max_fields=10)
    current, new = _text(form, "current_password"), _text(form, "new_password")
    if new != _text(form, "confirm_password"):
        return _account_page(request, user, status_code=422, errors=[_error(
            "confirm_password", "the new password and its confirmation differ")])
    try:
        await run_in_threadpool(people.directory.change_password, user.person.id, current,
                                new, client=client)
    except (InvalidRequest, TooManyAttempts) as exc:
        anchor = exc.field if isinstance(exc, InvalidRequest) else "current_password"
        anchor = "new_password" if anchor == "password" else anchor
        return _account_page(request, user, errors=[_error(anchor, str(exc))],
                             status_code=429 if isinstance(exc, TooManyAttempts) else 422,
                             headers=retry_after(exc))
    # Every session of theirs ended with the change; this browser gets a new one.
    issued = await run_in_threadpool(people.sessions.start, user.person.id, verified=True)
    response = _see_other(f"{HOME}/account?changed=password")
    _set_session(response, issued.token, settings.secure_cookies)
    return response


@router.post("/account/totp", response_class=HTMLResponse)
def offer_totp(request: Request, user: CsrfUser, people: PeopleDep) -> HTMLResponse:
    return _account_page(request, user, offer=people.directory.offer_totp(user.person.id))


@router.post("/account/totp/confirm", response_class=HTMLResponse)
async def confirm_totp(request: Request, user: CsrfUser, people: PeopleDep,
                       client: ClientDep) -> Response:
    form = await read_form(request, max_files=0, max_fields=10)
    sealed, code = _text(form, "offer"), _text(form, "code")
    try:
        await run_in_threadpool(people.directory.confirm_totp, user.person.id, sealed, code,
                                client=client)
    except (InvalidRequest, TooManyAttempts) as exc:
        try:
            offer: TotpOffer | None = people.directory.offer_from(user.person.id, sealed)
        except InvalidRequest:
            offer = None  # expired: the page offers to start again
        return _account_page(request, user, offer=offer, errors=[_error("code", str(exc))],
                             status_code=429 if isinstance(exc, TooManyAttempts) else 422,
                             headers=retry_after(exc))
    return _see_other(f"{HOME}/account?changed=totp")


@router.get("/people", response_class=HTMLResponse)
def people_list(request: Request, user: Annotated[LiveSession, require_roles(Role.ADMIN)],
                people: PeopleDep) -> HTMLResponse:
    return console_page(request, "people.html", user, title="People",
                        everyone=people.directory.people())


# -- errors as pages ----------------------------------------------------------------------


def _wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def error_page(request: Request, exc: ConsentryError, status: int) -> Response | None:
    """The console's answer to an error raised under ``/console`` (None: answer JSON)."""
    if _wants_json(request):
        return None
    secure = request.app.state.settings.secure_cookies
    if isinstance(exc, Unauthenticated):
        if exc.code == "second_factor_required":
            return _see_other(CODE)
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = _see_other(f"{LOGIN}?next={quote(_next(here), safe='/')}"
                              if request.method == "GET" else LOGIN)
        if request.cookies.get(SESSION_COOKIE):
            _clear_session(response, secure)  # it opens nothing any more
        return response
    session: LiveSession | None = getattr(request.state, "console_session", None)
    titles: dict[int, Any] = {403: "You cannot do this", 404: "Not found",
                              429: "Too many attempts"}
    return console_page(request, "error.html", session,
                        title=titles.get(status, "There is a problem"), status_code=status,
                        headers=retry_after(exc), message=_sentence(str(exc)))
