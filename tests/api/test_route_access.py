"""Who may reach what, for every route the app serves, generated from its router table: a
new route is tested the moment it is added, and a route whose protection cannot be read
from its dependencies fails here until it is declared public below.

Each route is classified by the dependencies it declares: an API key scope
(``api.auth.require``), a signed-in console person (``CurrentUser``), console roles
(``require_roles``), or public (listed in ``PUBLIC`` with the reason). Then every
principal (nobody, an API key of each scope, a console person of each role) calls it,
and the answer must admit exactly those the classification admits: a refusal is 401/403
or the sign-in page; an admission is anything else (404 and 422 included: the request is
dummy, the door is what is tested)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.config import Settings
from consentry.gate import Gate
from consentry.people import People
from consentry.people.directory import Directory
from consentry.people.roles import Role
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox

# Routes anyone may call, and why.
PUBLIC = {
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "readiness probe: answers codes only (docs/operations.md)",
    ("POST", "/v1/takedowns"): "victims need no account",
    ("GET", "/v1/takedowns/{number}"): "the case number and PIN prove standing",
    ("POST", "/v1/takedowns/{number}/amend"): "case number and PIN",
    ("POST", "/v1/takedowns/{number}/appeal"): "case number and PIN",
    ("POST", "/v1/appeals"): "the signed appeal token proves standing",
    ("GET", "/takedown"): "the public form",
    ("POST", "/takedown"): "the public form",
    ("GET", "/takedown/status"): "case number and PIN",
    ("POST", "/takedown/status"): "case number and PIN",
    ("GET", "/appeals"): "the public appeal page",
    ("POST", "/appeals"): "the signed appeal token proves standing",
    ("GET", "/console/login"): "signing in",
    ("POST", "/console/login"): "signing in",
}
# Routes that read the session themselves, with the access they enforce and why.
IN_HANDLER: dict[tuple[str, str], tuple[str, bool]] = {
    ("GET", "/console/login/code"): ("the code step: any session, even one still owing its "
                                     "second factor (which CurrentUser would refuse)", True),
}
# Dummy values for path parameters: the door is tested, not the room.
PARAMS = {"entry_id": "1", "name": "victims", "number": "TD-0000000000",
          "account_id": "u1", "queue": "gate_review", "item_id": "1", "id": "1",
          "position": "0", "report_id": "1", "puid": "chk_0", "request_id": "1",
          "check_id": "chk_0"}


@dataclass(frozen=True)
class Access:
    public: bool = False
    scope: Scope | None = None  # an API key with this scope (or admin)
    console: bool = False  # a signed-in console person
    roles: frozenset[Role] | None = None  # ... holding one of these


def _closure(fn, kind):  # the value of ``kind`` a dependency closes over
    for cell in fn.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, kind):
            return value
        if isinstance(value, frozenset) and value and all(isinstance(v, kind) for v in value):
            return value
    return None


def classify(route: APIRoute) -> Access:
    scope, console, roles = None, False, None
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        stack.extend(dep.dependencies)
        name = getattr(dep.call, "__qualname__", "")
        if name == "require.<locals>.dependency":
            scope = _closure(dep.call, Scope)
        elif name == "require_roles.<locals>.holds_role":
            roles = _closure(dep.call, Role)
            console = True
        elif name in ("current_user", "console_session"):
            console = True
    for method in route.methods:
        if (method, route.path) in PUBLIC:
            return Access(public=True)
        if (method, route.path) in IN_HANDLER:
            return Access(console=IN_HANDLER[method, route.path][1])
    return Access(scope=scope, console=console, roles=roles)


def routes(app) -> Iterator[APIRoute]:
    def walk(entries):
        for entry in entries:
            if isinstance(entry, APIRoute):
                yield entry
            elif hasattr(entry, "original_router"):  # an included router
                yield from walk(entry.original_router.routes)
    yield from walk(app.routes)


@dataclass(frozen=True)
class Principal:
    label: str
    key: str | None = None
    scopes: frozenset[Scope] = frozenset()
    roles: frozenset[Role] | None = None  # None: not a console person

    def admitted(self, access: Access) -> bool:
        if access.public:
            return True
        if access.scope is not None:
            return access.scope in self.scopes or Scope.ADMIN in self.scopes
        if access.console:
            if self.roles is None:
                return False
            return access.roles is None or not access.roles.isdisjoint(self.roles)
        return False


@pytest.fixture
def world(db, clock, tmp_path):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    people = People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                              passwords=CountingPasswords(), clock=clock),
                    Sessions(db, clock=clock))
    gate = Gate(db, settings=Settings(data_dir=tmp_path))
    app = create_app(gate=gate, people=people)
    principals = [Principal("nobody")]
    for scope in Scope:
        principals.append(Principal(f"key:{scope.value}",
                                    key=create_api_key(db, scope.value, [scope])[1],
                                    scopes=frozenset({scope})))
    for role in Role:
        people.directory.create(f"user-{role.value}".replace("_", "-"), roles=[role.value],
                                password=PASSWORD)
        principals.append(Principal(f"person:{role.value}", roles=frozenset({role})))
    with TestClient(app, follow_redirects=False) as client:
        yield app, client, principals
    gate.close()


def _call(client: TestClient, principal: Principal, method: str, path: str):
    client.cookies.clear()
    headers = {"Authorization": f"Bearer {principal.key}"} if principal.key else {}
    data = {}
    if principal.roles is not None:
        username = f"user-{next(iter(principal.roles)).value}".replace("_", "-")
        signed = client.post("/console/login", data={"username": username,
                                                     "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        account = client.get("/console/account")
        data["csrf_token"] = re.search(r'name="csrf_token" value="([^"]+)"',
                                       account.text).group(1)
    if method == "GET":
        return client.get(path, headers=headers)
    if path.startswith(("/console", "/takedown", "/appeals")):
        return client.request(method, path, headers=headers, data=data)
    return client.request(method, path, headers=headers, json={})


def _refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("location", "")
    return (response.status_code in (302, 303, 307) and location.startswith("/console/login")
            and "signed_out" not in location)  # signing out lands there too


def test_every_route_admits_exactly_whom_its_declared_protection_admits(world):
    app, client, principals = world
    checked, problems = 0, []
    for route in routes(app):
        access = classify(route)
        if not (access.public or access.scope or access.console):
            problems.append(f"{sorted(route.methods)} {route.path}: no protection found in "
                            "its dependencies; protect it, or list it in PUBLIC with why")
            continue
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMS[m.group(1)], route.path)
        for method in sorted(route.methods - {"HEAD"}):
            for principal in principals:
                response = _call(client, principal, method, path)
                checked += 1
                if principal.admitted(access) == _refused(response):
                    expected = "admitted" if principal.admitted(access) else "refused"
                    problems.append(f"{method} {route.path} as {principal.label}: "
                                    f"{response.status_code} {response.text[:120]!r}, "
                                    f"expected {expected}")
    assert not problems, "\n".join(problems)
    assert checked > 400  # every route, every principal
