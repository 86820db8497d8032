"""The review console in a real browser (Debian's chromium, driven by Playwright), over the
real gate, the real takedown service and a loopback platform:

- a moderator signs in, takes a held request, sees its image blurred and grey, reveals it
  and watches it blur again, and decides it with a clause and a rationale;
- a moderator without the child-safety role cannot open a CS-1 item by its URL;
- an uploader whose copy a takedown removed appeals through the link in their statement
  of reasons; a second reviewer grants the appeal; the content is restored through the
  platform callback, the strike is gone and the bank entry disabled.

Screenshots at 1280x800 and 390x844 go to ``test-artifacts/console/`` (git-ignored), and
every page must fit the width without sideways scrolling.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_world import ConsoleWorld, build, sign_in_page
from live_server import free_port, serving
from platform_content import register, tida
from playwright.sync_api import Page, expect
from sent_notices import sent_notices

from consentry.cases.intake import ContentLocator

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
SCREENS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
REBLUR_S = 2  # short, so the test watches it happen


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)
    return clock


@pytest.fixture
def site(db, analyser, clock, tmp_path, platform) -> Iterator[tuple[str, ConsoleWorld]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    world = build(db, analyser, clock, tmp_path, platform, base=base,
                  reveal_seconds=REBLUR_S)
    with serving(world.app, port):
        yield base, world
    world.close()


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert page.evaluate("document.documentElement.scrollWidth") <= width, \
        f"{name} scrolls sideways at {width} px"
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _preview_src(page: Page) -> str:
    return page.locator("figure.media img.preview").first.get_attribute("src") or ""


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_a_moderator_takes_a_held_request_reveals_it_sees_it_reblur_and_decides(
        browser, site, photos, screen):
    base, world = site
    held = world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    assert held.decision == "review"
    context = browser.new_context(viewport=SCREENS[screen])
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error"
            and not m.text.startswith("Failed to load resource") else None)  # the 422 below
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and ("/static/" in r.url or "/media/" in r.url) else None)
    sign_in_page(page, base, "mia")
    expect(page.locator("#queue-gate_review")).to_contain_text("1")
    _shot(page, f"home-{screen}")

    page.get_by_role("button", name="Take next from Held requests").click()
    expect(page).to_have_url(re.compile(r"/console/items/\d+$"))
    expect(page.locator("#claim")).to_contain_text("you, until")
    expect(page.locator("#prompt mark")).to_have_text("make her look hot")
    image = page.locator("figure.media img.preview").first
    expect(image).to_have_attribute("alt", re.compile("blurred and grey"))
    blurred_src = _preview_src(page)
    assert blurred_src.endswith("/media/0")
    assert image.evaluate("i => i.complete && i.naturalWidth") <= 320  # the small grey copy
    _shot(page, f"item-blurred-{screen}")

    page.get_by_role("button", name="Reveal image 1").click()
    expect(image).to_have_class(re.compile("revealed"))
    assert _preview_src(page).startswith("blob:")
    expect(page.locator("#reveal-status")).to_contain_text("Revealed for 2 seconds")
    _shot(page, f"item-revealed-{screen}")
    expect(image).not_to_have_class(re.compile("revealed"), timeout=REBLUR_S * 1000 + 3000)
    assert _preview_src(page) == blurred_src  # blurred again, by itself

    page.get_by_label("Refuse the request").check()
    page.get_by_label("Policy clause").select_option("II-1")
    page.get_by_label("Rationale").fill("inappropriate sexualisation")  # two words
    page.get_by_role("button", name="Record the decision").click()
    expect(page.get_by_role("alert")).to_contain_text("at least 3 words")
    page.get_by_label("Rationale").fill("a sexualised edit of a real woman in her own photo")
    page.get_by_role("button", name="Record the decision").click()
    expect(page.locator("#notice")).to_contain_text("Your decision is recorded")
    expect(page.locator("#item-status")).to_contain_text("closed (uphold)")
    expect(page.locator("#events")).to_contain_text("revealed · mia · image 1")
    _shot(page, f"item-decided-{screen}")
    assert world.gate.account_state("u1").active_strikes == 1
    assert problems == []
    context.close()


def test_a_moderator_cannot_open_a_cs1_item_by_its_url(browser, site, photos):
    base, world = site
    world.gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                [photos["astronaut"]], "p1")
    cara = browser.new_context(viewport=SCREENS["desktop"]).new_page()
    sign_in_page(cara, base, "cara")
    cara.get_by_role("button", name="Take next from Child safety (restricted)").click()
    expect(cara).to_have_url(re.compile(r"/console/items/\d+$"))
    item_url = cara.url
    expect(cara.locator("h1")).to_contain_text("CS-1 suspension to confirm")

    mia = browser.new_context(viewport=SCREENS["desktop"]).new_page()
    sign_in_page(mia, base, "mia")
    answer = mia.goto(item_url)
    assert answer is not None and answer.status == 404
    expect(mia.locator("h1")).to_have_text("Not found")
    expect(mia.locator("main")).not_to_contain_text("schoolgirl")
    _shot(mia, "cs1-refused-desktop")


def _statement_link(world: ConsoleWorld, account: str) -> str:
    bodies = [n.body for n in sent_notices(world.gate.db, world.gate.vault,
                                           "statement_of_reasons")
              if n.recipient == f"account:{account}"]
    assert bodies, "no statement of reasons was sent to the uploader"
    found = re.search(r"https?://\S+/appeals\?token=[\w.-]+", bodies[0])
    assert found, bodies[0]
    return found.group(0)


def test_an_uploader_appeals_a_takedown_and_a_second_reviewer_restores_the_content(
        browser, site, photos, platform):
    base, world = site
    takedowns = world.takedowns
    register(takedowns, "post-7", photos["hopper"], "uploader-7",
             url="https://social.example/p/7")
    case = takedowns.submit(tida(ContentLocator(urls=("https://social.example/p/7",)))).case
    assert case.status.value == "removed"
    assert world.gate.account_state("uploader-7").active_strikes > 0
    link = _statement_link(world, "uploader-7")
    assert link.startswith(base)

    uploader = browser.new_context(viewport=SCREENS["phone"]).new_page()
    uploader.goto(link)
    uploader.get_by_label(re.compile("why", re.I)).fill(
        "This is a photo of me that I took and posted myself.")
    uploader.get_by_role("button", name=re.compile("appeal", re.I)).click()
    expect(uploader.locator("main")).to_contain_text(re.compile(r"RV-\d+"))
    _shot(uploader, "appeal-filed-phone")

    noah = browser.new_context(viewport=SCREENS["desktop"]).new_page()
    sign_in_page(noah, base, "noah")
    noah.get_by_role("button", name="Take next from Appeals").click()
    expect(noah.locator("#appeal-reason")).to_contain_text("photo of me")
    expect(noah.locator("h2#case-title")).to_contain_text(case.number)
    noah.get_by_label("Grant the appeal: reverse everything").check()
    noah.get_by_label("Policy clause").select_option("OK-1")
    noah.get_by_label("Rationale").fill("the uploader is the person shown and consented")
    _shot(noah, "appeal-item-desktop")
    noah.get_by_role("button", name="Record the decision").click()
    expect(noah.locator("#item-status")).to_contain_text("closed (overturn)")

    deadline = time.monotonic() + 20
    while ("restore", "post-7") not in [(r.action, r.content_id) for r in platform.received]:
        assert time.monotonic() < deadline, "the content was never restored"
        takedowns.dispatch()
        time.sleep(0.2)
    assert world.gate.account_state("uploader-7").active_strikes == 0
    entries = [e for ev in takedowns.view(case.number).events if ev.kind.value == "banked"
               for e in ev.details["entries"]]
    assert entries and all(world.gate.banks.registry.entry(e).status == "disabled"
                           for e in entries)
