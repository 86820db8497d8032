"""Typed dependencies for routers and pages: the services and settings the app holds, who
the client is, and who is signed in to the console. Routes declare what they need
(``GateDep``, ``TakedownsDep``, ``ClientDep``, ``CurrentUser``, ``require_roles(...)``,
``CsrfUser``) instead of reaching into ``request.app.state``."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import Depends, Request

from consentry.cases.appeals import AppealDesk
from consentry.cases.decisions import Decisions
from consentry.cases.review import ReviewQueues
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.errors import Forbidden, Unauthenticated
from consentry.gate import Gate
from consentry.http.bodies import read_form
from consentry.limits import Limits
from consentry.people import LiveSession, People, Role
from consentry.reporting.cybertip_desk import CyberTipDesk
from consentry.reporting.law_enforcement import LawEnforcementDesk

# The console's session cookie: HttpOnly, SameSite=Strict, Path=/console (see
# consentry.web.console_auth, which sets it).
SESSION_COOKIE: Final = "consentry_console"
CSRF_FIELD: Final = "csrf_token"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Dependencies that only read app state are ``async``: FastAPI runs a plain ``def`` one in
# its thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_gate(request: Request) -> Gate:
    return request.app.state.gate


async def get_takedowns(request: Request) -> TakedownService:
    return request.app.state.takedowns


async def get_appeals(request: Request) -> AppealDesk:
    return request.app.state.appeals


async def get_queues(request: Request) -> ReviewQueues:
    return request.app.state.queues


async def get_decisions(request: Request) -> Decisions:
    return request.app.state.decisions


async def get_cybertip(request: Request) -> CyberTipDesk:
    return request.app.state.cybertip


async def get_law_enforcement(request: Request) -> LawEnforcementDesk:
    return request.app.state.law_enforcement


async def get_limits(request: Request) -> Limits:
    return request.app.state.takedowns.limits


async def get_people(request: Request) -> People:
    return request.app.state.people


def parse_networks(networks: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in networks)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def resolve_client(peer: str | None, forwarded_for: str | None,
                   trusted: Sequence[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy, in which case
    the nearest address in ``X-Forwarded-For`` that is not itself a trusted proxy (the
    right-most hops were written by our proxies; anything further left, by the client)."""
    if peer is None:
        return "unknown"
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return peer  # our proxies write addresses: the chain is not to be believed
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


async def client_address(request: Request) -> str:
    """Who is asking, for per-client limits (see ``resolve_client``)."""
    peer = request.client.host if request.client else None
    return resolve_client(peer, request.headers.get("x-forwarded-for"),
                          request.app.state.trusted_proxies)


SettingsDep = Annotated[Settings, Depends(get_settings)]
GateDep = Annotated[Gate, Depends(get_gate)]
TakedownsDep = Annotated[TakedownService, Depends(get_takedowns)]
ClientDep = Annotated[str, Depends(client_address)]
AppealsDep = Annotated[AppealDesk, Depends(get_appeals)]
QueuesDep = Annotated[ReviewQueues, Depends(get_queues)]
DecisionsDep = Annotated[Decisions, Depends(get_decisions)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
CyberTipDep = Annotated[CyberTipDesk, Depends(get_cybertip)]
LawEnforcementDep = Annotated[LawEnforcementDesk, Depends(get_law_enforcement)]


PeopleDep = Annotated[People, Depends(get_people)]


# -- the console: who is signed in --------------------------------------------------------
#
# Not signed in: ``Unauthenticated`` (401 for JSON; the console's error pages turn it into
# a redirect to the sign-in page). Signed in but lacking a role or a form's CSRF token:
# ``Forbidden`` (403).


def console_session(request: Request, people: PeopleDep) -> LiveSession:
    """The live session the cookie opens, verified or still owing its second factor."""
    session = people.sessions.resolve(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise Unauthenticated("sign in to use the console", code="sign_in_required")
    request.state.console_session = session  # for the layout: name, roles, logout form
    return session


AnySession = Annotated[LiveSession, Depends(console_session)]


def current_user(session: AnySession) -> LiveSession:
    """The signed-in person's session, second factor given."""
    if not session.verified:
        raise Unauthenticated("give the code from your authenticator app to finish signing "
                              "in", code="second_factor_required")
    return session


CurrentUser = Annotated[LiveSession, Depends(current_user)]


def require_roles(*roles: Role) -> Any:
    """A dependency admitting only people holding one of ``roles``:
    ``user: Annotated[LiveSession, require_roles(Role.LEAD)]`` or
    ``dependencies=[require_roles(Role.ADMIN)]``."""
    allowed = frozenset(roles)

    def holds_role(user: CurrentUser) -> LiveSession:
        if allowed.isdisjoint(user.person.roles):
            names = " or ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"this needs the {names} role; ask an administrator if you "
                            "should have it", code="role_required")
        return user

    return Depends(holds_role)


def same_origin(request: Request) -> bool:
    """Whether the browser says the request came from this service's own pages. Browsers
    send ``Sec-Fetch-Site``; older ones only ``Origin``, which is "null" under the
    console's no-referrer policy. A request that says neither passes: the CSRF token and
    the SameSite=Strict cookie still decide."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")  # "none": typed or bookmarked
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    own = {request.headers.get("host", ""),
           urlsplit(request.app.state.settings.public_base).netloc}
    return urlsplit(origin).netloc in own - {""}


async def check_csrf(request: Request, session: LiveSession) -> None:
    """``Forbidden`` unless the form carries ``session``'s CSRF token (compared in
    constant time) and did not come from another site."""
    form = await read_form(request, max_files=0, max_fields=20)
    sent = form.get(CSRF_FIELD)
    if (not isinstance(sent, str) or not same_origin(request)
            or not hmac.compare_digest(sent.encode(), session.csrf_token.encode())):
        raise Forbidden("this form has expired or did not come from the console: go back, "
                        "reload the page and send it again", code="csrf_failed")


async def csrf_user(request: Request, user: CurrentUser) -> LiveSession:
    await check_csrf(request, user)
    return user


async def csrf_session(request: Request, session: AnySession) -> LiveSession:
    await check_csrf(request, session)
    return session


# A state-changing form of a signed-in person; of any session (logout, the code step).
CsrfUser = Annotated[LiveSession, Depends(csrf_user)]
CsrfSession = Annotated[LiveSession, Depends(csrf_session)]
