"""From known child abuse to a CyberTipline report id, end to end: a KM-1 upload is
refused and its bytes sealed in the vault; the worker drafts a report for the account; a
child-safety reviewer confirms it in the console (Debian's chromium, driven by
Playwright); the worker sends it to a loopback server speaking the CyberTipline's wire
format, which receives submit, upload, fileinfo and finish in that order with documents
that validate; the report id is stored; the audit chain verifies. A moderator cannot
reach the reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from console_world import ConsoleWorld, build, sign_in_page
from live_server import free_port, serving
from ncmec_server import PASSWORD as NCMEC_PASSWORD
from ncmec_server import USERNAME as NCMEC_USERNAME
from ncmec_server import NcmecServer
from playwright.sync_api import expect
from server_process import wait_for

from consentry.audit.verify import verify
from consentry.banks.services import entry_hashes
from consentry.reporting.cybertipline import validate
from consentry.signals.hashing import fingerprint


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def ncmec() -> Iterator[NcmecServer]:
    server = NcmecServer()
    yield server
    server.close()


@pytest.fixture
def site(db, analyser, clock, tmp_path, platform, ncmec) -> Iterator[tuple[str, ConsoleWorld]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world = build(db, analyser, clock, tmp_path, platform, base=base,
                  cybertip_url=ncmec.url, cybertip_username=NCMEC_USERNAME,
                  cybertip_password=NCMEC_PASSWORD,
                  cybertip_reporter_email="safety@platform.example")
    with serving(world.app, port):
        yield base, world


def test_a_known_abuse_upload_becomes_a_confirmed_cybertipline_report(browser, site, photos,
                                                                     ncmec):
    base, world = site
    gate = world.gate
    gate.banks.registry.create("ncmec-hashes", "block", "csam")
    gate.banks.registry.add_entry("ncmec-hashes", entry_hashes(fingerprint(photos["coffee"])))
    verdict = gate.check_upload(photos["coffee"], "uploader-13", content_id="post-13")
    assert verdict.policy.clause == "KM-1" and verdict.enforcement.evidence_preserved

    desk = world.app.state.cybertip
    assert desk.draft_pending() == 1
    [draft] = desk.reports()
    assert draft.status == "draft" and draft.account_id == "uploader-13"
    assert desk.send_confirmed() == 0 and ncmec.endpoints() == []  # nothing before confirming

    moderator = browser.new_context().new_page()
    sign_in_page(moderator, base, "mia")
    answer = moderator.goto(f"{base}/console/reports/{draft.id}")
    assert answer is not None and answer.status == 403

    page = browser.new_context().new_page()
    sign_in_page(page, base, "cara")
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name=f"#{draft.id}").click()
    expect(page.locator("main")).to_contain_text(verdict.id)
    assert page.locator("main img").count() == 0  # never any media
    page.get_by_label("Industry classification").select_option("A1")
    page.get_by_label("Rationale").fill("known hash from the NCMEC list, uploaded by this account")
    page.get_by_role("button", name="Confirm: report to NCMEC").click()
    expect(page.locator("#report-status")).to_have_text("confirmed")

    # Sent by this call or by the app's job thread, whichever comes first; never both.
    desk.send_confirmed()
    wait_for(lambda: desk.report(draft.id).status == "sent", 30.0, "the report to be sent")
    assert ncmec.endpoints() == ["submit", "upload", "fileinfo", "finish"]
    [received] = ncmec.finished_reports()
    validate(received.xml, "report")
    validate(received.files[0].details, "fileDetails")
    assert received.files[0].data == photos["coffee"]
    assert b"uploader-13" in received.xml
    page.reload()
    expect(page.locator("#report-status")).to_have_text("sent")
    expect(page.locator("#ncmec-id")).to_have_text(received.report_id)
    assert desk.send_confirmed() == 0  # sent once
    assert re.fullmatch(r"\d+", received.report_id)
    assert verify(gate.db).ok
