"""The public takedown form in a real browser (Debian's chromium, driven by Playwright):
the photo is hashed in the page and only its hashes are sent; the case number and PIN
then open the status page. The in-page PDQ must agree with the server's within 10 bits
(Meta's own correctness criterion)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from live_server import serving
from playwright.sync_api import Browser, Page, expect
from removal_platform import SECRET

from consentry.api.app import create_app
from consentry.banks.services import entry_hashes
from consentry.cases.callback import PlatformCallback
from consentry.cases.senders import OutboxSender
from consentry.cases.takedowns import TakedownService
from consentry.signals.hashing import fingerprint, parse_pdq_hex
from consentry.store.models import TakedownCase


@pytest.fixture
def site(gate, platform, tmp_path: Path) -> Iterator[str]:
    """The app served over real HTTP on a free local port."""
    callback = PlatformCallback(platform.url, SECRET)
    takedowns = TakedownService(gate.db, gate.banks, gate.policy, callback=callback,
                                sender=OutboxSender(tmp_path / "outbox"))
    with serving(create_app(gate=gate, takedowns=takedowns)) as base:
        yield base
    callback.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    p = context.new_page()
    yield p
    context.close()


def distance(a: str, b: str) -> int:
    return (int.from_bytes(parse_pdq_hex(a), "big") ^ int.from_bytes(parse_pdq_hex(b), "big")
            ).bit_count()


def test_form_hashes_in_the_page_and_status_opens_with_case_number_and_pin(
        site, page, gate, platform, photos, tmp_path):
    photo = tmp_path / "me.jpg"
    photo.write_bytes(photos["hopper"])
    gate.banks.content.register("post-1", "upload", entry_hashes(fingerprint(photos["hopper"])),
                                account_id="uploader-1", url="https://social.example/p/1")

    page.goto(f"{site}/takedown")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Report an intimate image")
    page.get_by_label("US TAKE IT DOWN Act", exact=False).check()
    page.set_input_files("#image", str(photo))
    output = page.locator("#hash-output")
    expect(output).to_contain_text("PDQ", timeout=20_000)
    in_page = output.inner_text().split("PDQ ")[1].split()[0]
    server = fingerprint(photos["hopper"]).hashes.pdq.hex
    print(f"\nin-page PDQ vs server pdqhash: {distance(in_page, server)} bits")
    assert distance(in_page, server) <= 10, (in_page, server)

    page.get_by_label("I am the person shown", exact=True).check()
    page.get_by_label("Your name", exact=True).fill("Grace")
    page.get_by_label("Email address").fill("grace@example.org")
    page.get_by_label("Tell us briefly").fill("This photo of me was shared without consent.")
    page.get_by_label("shared without the consent", exact=False).check()
    page.get_by_label("Type your full name").fill("Grace H.")
    page.get_by_role("button", name="Send request").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("We have your request")
    number = page.locator("#case-number").inner_text()
    pin = page.locator("#case-pin").inner_text()
    with gate.db.transaction() as s:
        stored = s.query(TakedownCase).filter_by(number=number).one().submission["locator"]
    assert stored["images"] == 0 and stored["image_md5s"] == []  # the image never left
    assert distance(stored["pdq_hashes"][0], server) <= 10

    deadline = time.monotonic() + 10  # the callbacks run once the page has been sent
    while platform.removed != {"post-1"} and time.monotonic() < deadline:
        time.sleep(0.05)

    page.goto(f"{site}/takedown/status")
    page.get_by_label("Case number").fill(number.lower())
    page.get_by_label("PIN").fill("00000000")
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("alert")).to_contain_text("No case with that number and PIN")
    page.get_by_label("PIN").fill(pin)
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#case-status")).to_have_text("Removed")
    expect(page.locator("#case-removed")).to_contain_text("1 item")
    assert platform.removed == {"post-1"}  # found from the hashes alone


def test_form_is_usable_from_the_keyboard_and_every_field_is_labelled(site, page):
    page.goto(f"{site}/takedown")
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        'input:not([type=hidden]), textarea, select')].filter(el => !el.labels ||
        el.labels.length === 0).map(el => el.name)""")
    assert unlabelled == []
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to the form")
    for _ in range(60):  # every control is reachable by Tab, the button last
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "send-request":
            break
    else:
        pytest.fail("the submit button cannot be reached with the keyboard")


def test_without_javascript_the_form_sends_the_image(site, browser, gate, photos, tmp_path):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    photo = tmp_path / "me.jpg"
    photo.write_bytes(photos["hopper"])
    page.goto(f"{site}/takedown")
    assert not page.locator("#device-hashing").is_visible()
    page.get_by_label("US TAKE IT DOWN Act", exact=False).check()
    page.set_input_files("#image", str(photo))
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "We need a little more before we can act")
    number = page.locator("#case-number").inner_text()
    with gate.db.transaction() as s:
        stored = s.query(TakedownCase).filter_by(number=number).one().submission["locator"]
    assert stored["images"] == 1 and len(stored["image_md5s"]) == 1
    context.close()
