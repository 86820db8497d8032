"""The console as the review tests use it: the real gate (real models), the real takedown
service calling back a loopback platform, people with each role, and the app serving
them all. Shared by the review page tests and the review browser tests."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from fastapi import FastAPI
from playwright.sync_api import Page, expect
from removal_platform import SECRET, RemovalPlatform

from consentry.api.app import create_app
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.gate import Gate
from consentry.people import People
from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Who works the console in these tests, and with which roles.
STAFF = {"mia": ["moderator"], "noah": ["moderator"], "cara": ["child_safety"],
         "lee": ["lead"], "cora": ["compliance"]}


@dataclass
class ConsoleWorld:
    gate: Gate
    takedowns: TakedownService
    people: People
    app: FastAPI
    outbox: Path
    callback: PlatformCallback
    extra: dict[str, object] = field(default_factory=dict)

    def close(self) -> None:
        self.callback.close()
        self.takedowns.close()


def build(db, analyser, clock, tmp_path: Path, platform: RemovalPlatform, *,
          base: str = "http://testserver", **options) -> ConsoleWorld:
    """``base``: where the site is reached (links in statements of reasons point there);
    ``options``: more ``Settings``."""
    options.setdefault("cookie_secure", False)  # plain http in tests
    settings = Settings(data_dir=tmp_path, public_url=base, **options)
    gate = Gate(db, settings=settings, analyser=analyser, clock=clock)
    callback = PlatformCallback(platform.url, SECRET)
    outbox = tmp_path / "outbox"
    takedowns = TakedownService(db, gate.banks, gate.policy, callback=callback,
                                sender=OutboxSender(outbox), clock=clock,
                                appeal_tokens=gate.appeal_tokens,
                                status_url=f"{base}/takedown/status",
                                appeal_url=f"{base}/appeals", vault=gate.vault)
    people = People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                              passwords=CountingPasswords(), clock=clock),
                    Sessions(db, clock=clock))
    for name, roles in STAFF.items():
        people.directory.create(name, roles=roles, password=PASSWORD,
                                display_name=name.title())
    app = create_app(settings, gate=gate, takedowns=takedowns, people=people)
    return ConsoleWorld(gate, takedowns, people, app, outbox, callback)


def csrf(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in_page(page: Page, base: str, name: str) -> None:
    """Sign ``name`` in through the console's pages in a real browser."""
    page.goto(f"{base}/console")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{base}/console")
