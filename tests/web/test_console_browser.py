"""The console's sign-in in a real browser (Debian's chromium, driven by Playwright) with
JavaScript off: the forms work without it, the stylesheet loads under the
Content-Security-Policy, and the layout fits a 390 px phone and a 1280 px desktop
without sideways scrolling, the signed-in name and the sign-out button in view."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from counting_passwords import PASSWORD, SECRET_KEY, CountingPasswords
from live_server import serving
from playwright.sync_api import expect

from consentry.api.app import create_app
from consentry.config import Settings
from consentry.gate import Gate
from consentry.people import People
from consentry.people.directory import Directory
from consentry.people.sessions import Sessions
from consentry.people.totp import SecretBox


@pytest.fixture
def site(db, tmp_path: Path) -> Iterator[str]:
    gate = Gate(db, settings=Settings(data_dir=tmp_path))
    people = People(Directory(db, secrets=SecretBox(lambda: SECRET_KEY),
                              passwords=CountingPasswords()), Sessions(db))
    people.directory.create("root", roles=["admin", "child_safety", "compliance", "lead"],
                            password=PASSWORD, display_name="Alexandra Featherstonehaugh")
    with serving(create_app(gate=gate, people=people)) as base:
        yield base
    gate.close()


@pytest.mark.parametrize("width", [390, 1280])
def test_sign_in_and_out_without_javascript_at_phone_and_desktop_widths(
        browser, site, width, tmp_path):
    context = browser.new_context(java_script_enabled=False,
                                  viewport={"width": width, "height": 800})
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.goto(f"{site}/console/account")
    expect(page).to_have_url(f"{site}/console/login?next=/console/account")
    page.get_by_label("Username").fill("root")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong username or password")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site}/console/account")

    # The stylesheet applied (the CSP let it in), and nothing runs sideways.
    masthead = page.locator("header.masthead")
    assert masthead.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(20, 35, 60)"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    expect(page.locator("#signed-in-as")).to_contain_text("Alexandra Featherstonehaugh")
    sign_out = page.get_by_role("button", name="Sign out")
    expect(sign_out).to_be_in_viewport()
    page.screenshot(path=str(tmp_path / f"console-{width}.png"), full_page=True)

    sign_out.click()
    expect(page).to_have_url(f"{site}/console/login?signed_out=1")
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto(f"{site}/console")
    expect(page).to_have_url(f"{site}/console/login?next=/console")
    assert blocked == []
    context.close()
