"""A law-enforcement disclosure in a real browser (Debian's chromium, driven by
Playwright): a child-safety reviewer records a disclosure request through the console's
form, the hold is placed, and the encrypted package comes back as a download that opens
with the passphrase and holds the account's evidence. A moderator cannot reach the page.
A screenshot of the request page goes to ``test-artifacts/console/`` (git-ignored)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_world import ConsoleWorld, build, sign_in_page
from live_server import free_port, serving
from playwright.sync_api import expect

from consentry.audit.verify import verify
from consentry.reporting.law_enforcement import open_package

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PASSPHRASE = "amber kettle river stone"
CONTENT = b"\xff\xd8 the sealed upload of uploader-21"


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def site(db, clock, tmp_path, platform) -> Iterator[tuple[str, ConsoleWorld]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world = build(db, None, clock, tmp_path, platform, base=base)  # no image models needed
    with serving(world.app, port):
        yield base, world
    world.close()


def test_a_child_safety_reviewer_records_a_request_and_downloads_its_package(browser, site,
                                                                              tmp_path):
    base, world = site
    gate = world.gate
    with gate.db.transaction() as s:
        gate.vault.seal(s, subject_kind="check", subject="chk_21", content=CONTENT,
                        metadata={"prompt": "the refused prompt"}, clause="KM-1",
                        account_id="uploader-21")

    moderator = browser.new_context().new_page()
    sign_in_page(moderator, base, "mia")
    answer = moderator.goto(f"{base}/console/law-enforcement")
    assert answer is not None and answer.status == 403

    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    sign_in_page(page, base, "cara")
    page.get_by_role("link", name="Law enforcement").click()
    page.get_by_label("Kind").select_option("disclosure")
    page.get_by_label("Agency").fill("National Crime Agency")
    page.get_by_label("Their reference").fill("NCA-2026-0042")
    page.get_by_label("Legal basis").fill("production order, Crime and Courts Act 2013")
    page.get_by_label("Account").fill("uploader-21")
    page.get_by_label("Deadline (optional)").fill("2099-01-31")
    page.get_by_role("button", name="Record and place the hold").click()
    expect(page.locator("#request-status")).to_have_text("open")
    expect(page.locator("#hold")).to_contain_text("kept past retention")
    expect(page.locator("#deadline")).to_contain_text("due in")
    assert all(i.held for i in gate.vault.items(account_id="uploader-21"))

    page.get_by_label("Passphrase").fill(PASSPHRASE)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "law-enforcement-request.png"), full_page=True)
    with page.expect_download() as waiting:
        page.get_by_role("button", name="Make and download the package").click()
    download = waiting.value
    assert download.suggested_filename.startswith("disclosure-")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    archive = zipfile.ZipFile(io.BytesIO(open_package(saved.read_bytes(), PASSPHRASE)))
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["request"]["reference"] == "NCA-2026-0042"
    [item] = manifest["items"]
    assert item["of"] == "check:chk_21" and archive.read(item["content"]) == CONTENT

    page.goto(f"{base}/console/law-enforcement")
    expect(page.locator("main")).to_contain_text("disclosed")
    assert verify(gate.db).ok
    context.close()
