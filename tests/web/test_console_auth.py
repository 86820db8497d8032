"""Signing in to the console through its pages, as a browser would (TestClient, both
databases): the cookie, the same answer for every wrong attempt, limits, rotation,
timeouts, logout, CSRF, the TOTP step, roles, and the headers on every console page."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from fastapi.testclient import TestClient

from consentry.api.app import create_app
from consentry.config import Settings
from consentry.gate import Gate
from consentry.http.deps import SESSION_COOKIE
from consentry.people import People, totp
from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def clock(clock):
    """The test clock, set to now: the app's case worker prunes limit windows older than
    two days by the real clock."""
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path)


@pytest.fixture
def people(db, clock) -> People:
    return People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                            passwords=CountingPasswords(), clock=clock),
                  Sessions(db, clock=clock))


@pytest.fixture
def gate(db, settings) -> Iterator[Gate]:
    # No image models: the console never needs them.
    g = Gate(db, settings=settings)
    yield g
    g.close()


@pytest.fixture
def connect(gate, people, settings) -> Iterator:
    """Browsers at different addresses, all talking to one app over one database."""
    opened: list[TestClient] = []

    def make(address: str = "198.51.100.7", app_settings: Settings | None = None) -> TestClient:
        if app_settings is not None:
            gate.settings = app_settings
        client = TestClient(create_app(gate=gate, people=people),
                            client=(address, 4000), follow_redirects=False)
        opened.append(client.__enter__())
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def browser(connect) -> TestClient:
    return connect()


@pytest.fixture
def alice(people):
    return people.directory.create("alice", roles=["moderator", "lead"], password=PASSWORD,
                                   display_name="Alice Moss")


def sign_in(client: TestClient, username: str = "alice", password: str = PASSWORD, **extra):
    return client.post("/console/login", data={"username": username, "password": password,
                                               **extra})


def csrf(client: TestClient, path: str = "/console/account") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no CSRF field"
    return found.group(1)


def plant(client: TestClient, token: str) -> None:
    """Put a session cookie in a browser, as if set by the console."""
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, token, domain="testserver.local", path="/console")


def summary(page) -> list[str]:
    return re.findall(r'<li><a href="#[^"]+">([^<]+)</a></li>', page.text)


# -- signing in ---------------------------------------------------------------------------


def test_signing_in_sets_a_strict_http_only_console_cookie_and_opens_the_console(
        browser, alice):
    assert browser.get("/console/login").status_code == 200
    answer = sign_in(browser, next="/console/account")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/account"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a browser would drop it
    home = browser.get("/console")
    assert home.status_code == 200
    assert "Alice Moss" in home.text and "lead, moderator" in home.text


def test_the_cookie_is_secure_when_the_service_is_reached_over_https(connect, settings,
                                                                     alice):
    browser = connect(app_settings=replace(settings, public_url="https://console.example"))
    cookie = sign_in(browser).headers["set-cookie"]
    assert "Secure" in cookie


def test_unknown_disabled_and_wrong_answer_alike(browser, people, alice):
    people.directory.create("dana", roles=["moderator"], password=PASSWORD)
    people.directory.disable("dana")
    answers = [sign_in(browser, "nobody", PASSWORD), sign_in(browser, "dana", PASSWORD),
               sign_in(browser, "alice", "wrong password here")]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert [summary(a) for a in answers] == [["Wrong username or password."]] * 3
    assert not any(SESSION_COOKIE in a.headers.get("set-cookie", "") for a in answers)
    # Byte for byte the same page, but for the username typed back into its field.
    bodies = {a.text.replace(f'value="{name}"', 'value=""')
              for a, name in zip(answers, ["nobody", "dana", "alice"], strict=True)}
    assert len(bodies) == 1


def test_missing_fields_are_named_in_the_error_summary(browser):
    answer = sign_in(browser, "", "")
    assert answer.status_code == 422
    assert summary(answer) == ["Enter your username.", "Enter your password."]
    assert 'href="#username"' in answer.text and 'href="#password"' in answer.text


def test_too_many_failures_are_a_429_page_with_retry_after(connect, alice):
    for i in range(10):
        assert sign_in(connect(f"203.0.113.{i}"), "alice", "wrong").status_code == 401
    limited = sign_in(connect("192.0.2.1"), "alice", PASSWORD)
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    assert "too many failed sign-ins" in limited.text.lower()
    assert SESSION_COOKIE not in limited.headers.get("set-cookie", "")


def test_no_password_reaches_the_logs(browser, alice, caplog):
    caplog.set_level(logging.DEBUG)
    for username in ("alice", "nobody"):
        sign_in(browser, username, "hunter2 but longer")
    sign_in(browser, "alice", PASSWORD)
    assert "sign-in refused" in caplog.text
    assert "hunter2" not in caplog.text and PASSWORD not in caplog.text


def test_pages_send_strangers_to_sign_in_and_json_clients_get_401(browser, alice):
    page = browser.get("/console/account?x=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/account%3Fx%3D1"
    api = browser.get("/console", headers={"Accept": "application/json"})
    assert api.status_code == 401 and api.json()["error"]["code"] == "sign_in_required"
    sign_in(browser, next="/console/account?x=1")
    assert browser.get("/console/account").status_code == 200


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # what no-referrer pages send
    {"Origin": "http://testserver"}, {"Sec-Fetch-Site": "none"}])
def test_a_sign_in_from_the_console_itself_is_accepted(browser, alice, headers):
    answer = browser.post("/console/login", data={"username": "alice", "password": PASSWORD},
                          headers=headers)
    assert answer.status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console",
                                    "/console/../../x\\y", "/other", "/console/login"])
def test_after_sign_in_only_console_pages_are_gone_to(browser, alice, target):
    assert sign_in(browser, next=target).headers["location"] == "/console"


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
    {"Sec-Fetch-Site": "same-site", "Origin": "https://other.testserver"}])
def test_a_sign_in_from_another_site_is_refused(browser, alice, headers):
    answer = browser.post("/console/login", data={"username": "alice", "password": PASSWORD},
                          headers=headers)
    assert answer.status_code == 403 and SESSION_COOKIE not in answer.headers.get(
        "set-cookie", "")


# -- sessions -------------------------------------------------------------------------------


def test_signing_in_again_rotates_the_session(connect, alice):
    browser = connect()
    sign_in(browser)
    old = browser.cookies[SESSION_COOKIE]
    sign_in(browser)  # the old cookie is sent with this sign-in
    new = browser.cookies[SESSION_COOKIE]
    assert new != old
    assert browser.get("/console").status_code == 200
    stale = connect("198.51.100.8")
    plant(stale, old)
    assert stale.get("/console").status_code == 303


def test_a_planted_cookie_is_worthless_after_sign_in(connect, people, alice):
    """Fixation: a token an attacker got into the victim's browser stops at sign-in."""
    attacker = connect("203.0.113.9")
    people.directory.create("mallory", roles=["moderator"], password=PASSWORD)
    sign_in(attacker, "mallory")
    planted = attacker.cookies[SESSION_COOKIE]
    victim = connect()
    plant(victim, planted)
    sign_in(victim)
    assert victim.cookies[SESSION_COOKIE] != planted
    assert attacker.get("/console").status_code == 303


def test_idle_and_absolute_timeouts(browser, alice, clock):
    sign_in(browser)
    clock.advance(minutes=29)
    assert browser.get("/console").status_code == 200
    clock.advance(minutes=31)
    assert browser.get("/console").status_code == 303  # idle for 31 minutes
    sign_in(browser)
    for _ in range(28):  # busy all day: 700 minutes
        clock.advance(minutes=25)
        assert browser.get("/console").status_code == 200
    clock.advance(minutes=20)
    assert browser.get("/console").status_code == 303  # 12 hours after sign-in


def test_logout_ends_the_session(browser, alice):
    sign_in(browser)
    token = browser.cookies[SESSION_COOKIE]
    answer = browser.post("/console/logout", data={"csrf_token": csrf(browser)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?signed_out=1"
    assert 'Max-Age=0' in answer.headers["set-cookie"] or "expires" in \
        answer.headers["set-cookie"].lower()
    plant(browser, token)
    assert browser.get("/console").status_code == 303


def test_disabling_a_person_ends_their_session_at_once(browser, people, alice):
    sign_in(browser)
    people.directory.disable("alice")
    assert browser.get("/console").status_code == 303


# -- CSRF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [None, "", "wrong-token"])
def test_a_form_without_its_csrf_token_is_403_and_changes_nothing(browser, alice, sent):
    sign_in(browser)
    form = {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
            "confirm_password": NEW_PASSWORD}
    if sent is not None:
        form["csrf_token"] = sent
    answer = browser.post("/console/account/password", data=form)
    assert answer.status_code == 403
    assert "reload the page" in answer.text
    assert browser.get("/console").status_code == 200  # still signed in
    assert sign_in(browser).status_code == 303  # the old password still works
    logout = browser.post("/console/logout", data={"csrf_token": sent or ""})
    assert logout.status_code == 403
    assert browser.get("/console").status_code == 200  # not signed out either


def test_another_sessions_csrf_token_does_not_serve(connect, people, alice):
    people.directory.create("bob", roles=["moderator"], password=PASSWORD)
    bob = connect("198.51.100.9")
    sign_in(bob, "bob")
    browser = connect()
    sign_in(browser)
    answer = browser.post("/console/logout", data={"csrf_token": csrf(bob)})
    assert answer.status_code == 403


def test_a_form_posted_from_another_site_is_403_even_with_the_token(browser, alice):
    sign_in(browser)
    answer = browser.post("/console/logout", data={"csrf_token": csrf(browser)},
                          headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert browser.get("/console").status_code == 200


# -- the account page -----------------------------------------------------------------------


def test_changing_ones_password_ends_other_sessions_and_keeps_this_one(connect, alice):
    phone, laptop = connect("198.51.100.20"), connect()
    sign_in(phone)
    sign_in(laptop)
    before = laptop.cookies[SESSION_COOKIE]
    answer = laptop.post("/console/account/password", data={
        "csrf_token": csrf(laptop), "current_password": PASSWORD,
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert answer.status_code == 303
    assert laptop.cookies[SESSION_COOKIE] != before
    assert "Your password is changed" in laptop.get(answer.headers["location"]).text
    assert phone.get("/console").status_code == 303
    assert sign_in(connect("198.51.100.21"), password=NEW_PASSWORD).status_code == 303


def test_password_problems_are_shown_in_the_error_summary(browser, alice):
    sign_in(browser)
    token = csrf(browser)
    weak = browser.post("/console/account/password", data={
        "csrf_token": token, "current_password": PASSWORD, "new_password": "short",
        "confirm_password": "short"})
    assert weak.status_code == 422
    assert summary(weak)[0].startswith("Use at least 12 characters")
    assert 'href="#new_password"' in weak.text
    wrong = browser.post("/console/account/password", data={
        "csrf_token": token, "current_password": "not my password",
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert summary(wrong) == ["Your current password is not right."]
    differ = browser.post("/console/account/password", data={
        "csrf_token": token, "current_password": PASSWORD,
        "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x"})
    assert summary(differ) == ["The new password and its confirmation differ."]


# -- the second factor ----------------------------------------------------------------------


def _secret(uri: str) -> str:
    return uri.split("secret=")[1].split("&")[0]


def test_a_session_with_totp_opens_nothing_until_the_code(browser, people, alice, clock):
    secret = _secret(people.directory.turn_on_totp("alice"))
    answer = sign_in(browser, next="/console/account")
    assert answer.headers["location"] == "/console/login/code?next=/console/account"
    assert browser.get("/console").headers["location"] == "/console/login/code"
    assert browser.get("/console/account").status_code == 303
    page = browser.get("/console/login/code?next=/console/account")
    assert page.status_code == 200 and 'autocomplete="one-time-code"' in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    pending = browser.cookies[SESSION_COOKIE]

    right = totp.code_at(secret, clock.now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    refused = browser.post("/console/login/code", data={"csrf_token": token, "code": wrong})
    assert refused.status_code == 401 and "not right" in refused.text
    assert browser.get("/console").status_code == 303

    no_csrf = browser.post("/console/login/code", data={"code": right})
    assert no_csrf.status_code == 403

    accepted = browser.post("/console/login/code", data={
        "csrf_token": token, "code": right, "next": "/console/account"})
    assert accepted.status_code == 303 and accepted.headers["location"] == "/console/account"
    assert browser.cookies[SESSION_COOKIE] != pending  # a new session once verified
    assert browser.get("/console/account").status_code == 200

    # The same code cannot sign in a second browser.
    other = sign_in(browser)
    assert other.headers["location"].startswith("/console/login/code")
    token = csrf(browser, "/console/login/code")
    reused = browser.post("/console/login/code", data={"csrf_token": token, "code": right})
    assert reused.status_code == 401 and "already used" in reused.text


def test_the_code_step_ends_after_five_minutes(browser, people, alice, clock):
    people.directory.turn_on_totp("alice")
    sign_in(browser)
    clock.advance(minutes=5)
    assert browser.get("/console/login/code").headers["location"] == "/console/login"


def test_turning_totp_on_from_the_account_page(browser, people, alice, clock):
    sign_in(browser)
    token = csrf(browser)
    offered = browser.post("/console/account/totp", data={"csrf_token": token})
    assert offered.status_code == 200
    uri = re.search(r'<output id="totp-uri">([^<]+)</output>', offered.text).group(1)
    secret = _secret(uri.replace("&amp;", "&"))
    sealed = re.search(r'name="offer" value="([^"]+)"', offered.text).group(1)
    assert secret not in sealed
    assert not people.directory.get("alice").has_totp

    wrong = browser.post("/console/account/totp/confirm", data={
        "csrf_token": token, "offer": sealed, "code": "12345"})
    assert wrong.status_code == 422 and summary(wrong) and "totp-uri" in wrong.text
    done = browser.post("/console/account/totp/confirm", data={
        "csrf_token": token, "offer": sealed, "code": totp.code_at(secret, clock.now)})
    assert done.status_code == 303
    assert people.directory.get("alice").has_totp
    assert "authenticator app is set up" in browser.get(done.headers["location"]).text

    clock.advance(seconds=30)
    sign_in(browser)
    code = browser.post("/console/login/code", data={
        "csrf_token": csrf(browser, "/console/login/code"),
        "code": totp.code_at(secret, clock.now)})
    assert code.status_code == 303 and browser.get("/console").status_code == 200


# -- roles ----------------------------------------------------------------------------------


def test_a_page_for_a_role_is_403_for_everyone_else(connect, people, alice):
    people.directory.create("root", roles=["admin"], password=PASSWORD)
    moderator, admin = connect(), connect("198.51.100.30")
    sign_in(moderator)
    sign_in(admin, "root")
    refused = moderator.get("/console/people")
    assert refused.status_code == 403 and "admin role" in refused.text
    assert "Alice Moss" in refused.text  # the layout still says who is signed in
    listed = admin.get("/console/people")
    assert listed.status_code == 200 and "alice" in listed.text
    assert 'href="/console/people"' in listed.text
    assert 'href="/console/people"' not in moderator.get("/console").text


# -- headers ---------------------------------------------------------------------------------


def test_every_console_response_carries_the_security_headers(browser, alice):
    answers = [browser.get("/console/login"), browser.get("/console"),
               sign_in(browser, password="wrong"), sign_in(browser),
               browser.get("/console"), browser.get("/console/account"),
               browser.get("/console/people"),
               browser.post("/console/logout", data={}),
               browser.get("/console", headers={"Accept": "application/json"})]
    assert {a.status_code for a in answers} >= {200, 303, 401, 403}
    for answer in answers:
        h = answer.headers
        assert h["cache-control"] == "no-store"
        assert h["x-frame-options"] == "DENY"
        assert h["referrer-policy"] == "no-referrer"
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp


def test_console_pages_use_no_inline_script_or_style(browser, alice):
    pages = [browser.get("/console/login").text]
    sign_in(browser)
    pages += [browser.get(path).text for path in ("/console", "/console/account")]
    for page in pages:
        # Scripts only from files (the CSP allows nothing else): no inline code at all.
        assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)|<script[^>]*>[^<]", page)
        assert "<style" not in page and " style=" not in page
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)  # no event-handler attributes
        assert '<a class="skip" href="#main">' in page
    assert browser.get("/static/console.css").status_code == 200


def test_the_public_pages_keep_their_own_headers(browser):
    assert "x-frame-options" not in browser.get("/takedown/status").headers
