"""Answering a regulator in the console (Debian's chromium, driven by Playwright): a
compliance officer opens the transparency report and the incident pack's summary over a
generated history, the charts load as server-drawn SVG, the downloaded documents read as
documents; an administrator records a regulator request, which compliance then sees
with its countdown but cannot change; a moderator reaches none of it. Screenshots go to
``test-artifacts/reports/`` (git-ignored)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from console_world import ConsoleWorld, build, sign_in_page
from counting_passwords import PASSWORD
from live_server import free_port, serving
from playwright.sync_api import Page, expect
from report_history import END, START, build_history

from consentry.reporting.regulator_requests import RegulatorRegister

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reports"


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def site(db, analyser, clock, tmp_path, platform) -> Iterator[tuple[str, ConsoleWorld]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world = build(db, analyser, clock, tmp_path, platform, base=base)
    world.people.directory.create("ada", roles=["admin"], password=PASSWORD)
    with serving(world.app, port):
        yield base, world
    world.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _images_loaded(page: Page) -> bool:
    return page.evaluate("Array.from(document.images).every(i => i.complete && "
                         "i.naturalWidth > 0)")


def test_compliance_reads_the_report_and_the_pack_and_admin_keeps_the_register(
        browser, site, tmp_path):
    base, world = site
    history = build_history(world.gate.db)
    query = f"from={START.date()}&to={END.date()}"

    cora = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in_page(cora, base, "cora")
    cora.goto(f"{base}/console/transparency?{query}")
    expect(cora.get_by_role("heading", name="Transparency report")).to_be_visible()
    expect(cora.get_by_role("heading", name="Takedown requests")).to_be_visible()
    cora.wait_for_load_state("networkidle")
    assert cora.locator("img").count() == 2 and _images_loaded(cora)
    _shot(cora, "transparency-console")

    with cora.expect_download() as download:
        cora.get_by_role("link", name="HTML document").click()
    document = tmp_path / "transparency.html"
    download.value.save_as(document)
    cora.goto(document.as_uri())
    expect(cora.get_by_role("heading", name="Transparency report")).to_be_visible()
    assert cora.locator("svg").count() == 2
    _shot(cora, "transparency-document")

    cora.goto(f"{base}/console/incident?{query}")
    expect(cora.get_by_role("heading", name="Incident pack")).to_be_visible()
    expect(cora.get_by_text("Verified.")).to_be_visible()
    cora.wait_for_load_state("networkidle")
    assert _images_loaded(cora)
    _shot(cora, "incident-console")
    with cora.expect_download() as download:
        cora.get_by_role("link", name="Download the pack (zip)").click()
    pack = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    summary = tmp_path / "summary.html"
    summary.write_bytes(pack.read("summary.html"))
    text = b"".join(pack.read(n) for n in pack.namelist()).decode()
    assert not [p for p in history.personal if p in text]
    cora.goto(summary.as_uri())
    expect(cora.get_by_role("heading", name="Incident pack: summary")).to_be_visible()
    _shot(cora, "incident-summary")

    ada = browser.new_context().new_page()
    sign_in_page(ada, base, "ada")
    ada.goto(f"{base}/console/requests")
    ada.get_by_label("Regulator").fill("Ofcom")
    ada.get_by_label("Reference").fill("OFC-2026-0107")
    ada.get_by_label("Legal basis").fill("OSA s.100")
    ada.get_by_label("Questions").fill("What happened, what did you do, and how fast?")
    deadline = (datetime.now(UTC) + timedelta(days=3, hours=2)).strftime("%Y-%m-%dT%H:%M")
    ada.get_by_label("Deadline (UTC)").fill(deadline)
    ada.get_by_role("button", name="Record").click()
    expect(ada.get_by_text("due in 3 d")).to_be_visible()
    # The answer: an incident pack produced for the request, its SHA-256 on the register.
    ada.get_by_label("from", exact=True).fill(str((datetime.now(UTC) - timedelta(days=2)).date()))
    ada.get_by_label("to", exact=True).fill(str((datetime.now(UTC) + timedelta(days=1)).date()))
    with ada.expect_download() as attached:
        ada.get_by_role("button", name="Download and attach").click()
    sent = Path(attached.value.path()).read_bytes()
    assert zipfile.ZipFile(io.BytesIO(sent)).read("manifest.json")
    ada.goto(f"{base}/console/requests")
    expect(ada.get_by_text(f"sha256 {hashlib.sha256(sent).hexdigest()[:12]}")).to_be_visible()

    cora.goto(f"{base}/console/requests")
    expect(cora.get_by_text("OFC-2026-0107")).to_be_visible()
    expect(cora.get_by_text("due in 3 d")).to_be_visible()
    assert cora.get_by_role("button", name="Record").count() == 0
    _shot(cora, "requests")
    [recorded] = RegulatorRegister(world.gate.db).requests()
    assert recorded.recorded_by.endswith(":ada")

    mia = browser.new_context().new_page()
    sign_in_page(mia, base, "mia")
    for path in ("/console/transparency", "/console/incident", "/console/requests"):
        assert mia.goto(f"{base}{path}").status == 403
