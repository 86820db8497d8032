"""The console's review pages over HTTP: queues with SLA countdowns, taking the next item,
the item view (marked spans, reasons, face boxes, account history), media blurred and
grey unless revealed (recorded, limited per shift, never cached), decisions one by one or
in bulk with a clause and a rationale, restricted items out of reach, compliance
read-only. On SQLite and PostgreSQL, with the real gate and models."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from console_world import ConsoleWorld, build, csrf
from counting_passwords import PASSWORD
from fastapi.testclient import TestClient
from PIL import Image, ImageStat

import consentry.policy

WHY = "a swimsuit edit of a real woman in her photo"


@pytest.fixture
def clock(clock):
    clock.now = datetime.now(UTC).replace(microsecond=0)  # sessions expire by real time
    return clock


@pytest.fixture
def world(db, analyser, clock, tmp_path, platform) -> Iterator[ConsoleWorld]:
    w = build(db, analyser, clock, tmp_path, platform, reveals_per_shift=2)
    yield w
    w.close()


@pytest.fixture
def sign_in(world) -> Iterator:
    opened: list[TestClient] = []

    def as_person(name: str) -> TestClient:
        client = TestClient(world.app, follow_redirects=False)
        opened.append(client.__enter__())
        signed = client.post("/console/login", data={"username": name, "password": PASSWORD})
        assert signed.status_code == 303, signed.text
        return client

    yield as_person
    for client in opened:
        client.__exit__(None, None, None)


def _token(client: TestClient, path: str = "/console") -> str:
    return csrf(client.get(path).text)


def _take(client: TestClient, queue: str) -> int:
    taken = client.post(f"/console/queues/{queue}/next", data={"csrf_token": _token(client)})
    assert taken.status_code == 303, taken.text
    found = re.fullmatch(r"/console/items/(\d+)", taken.headers["location"])
    assert found, taken.headers["location"]
    return int(found.group(1))


def _image(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert "no-store" in response.headers["cache-control"]
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def _colourful(img: Image.Image) -> float:
    """Mean distance between channels: 0 for grey."""
    r, g, b = (ImageStat.Stat(band).mean[0] for band in img.split())
    pixels = np.asarray(img).astype(int)
    return float((pixels.max(axis=2) - pixels.min(axis=2)).mean()) + abs(r - g) + abs(g - b)


def test_a_moderator_takes_a_held_request_sees_it_blurred_reveals_it_and_decides(
        world, sign_in, photos):
    held = world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    assert held.decision == "review"
    mia = sign_in("mia")
    home = mia.get("/console")
    assert home.status_code == 200
    row = re.search(r'<tr id="queue-gate_review">(.*?)</tr>', home.text, re.S).group(1)
    assert '<td class="num" data-label="Open">1</td>' in row and "Take next" in row
    assert "child_safety" not in home.text  # not her queue

    queue = mia.get("/console/queues/gate_review")
    assert re.search(r"due in 2[34] h", queue.text)
    assert 'class="thumb" src="/console/items/' in queue.text

    item_id = _take(mia, "gate_review")
    page = mia.get(f"/console/items/{item_id}")
    assert page.status_code == 200
    assert '<mark title="the request asks for a sexualised look">make her look hot</mark>' \
        in page.text
    assert "you, until" in page.text  # her claim
    assert "estimated age" in page.text  # the face the verdict reported
    assert "Account u1" in page.text and 'name="clause"' in page.text
    for html in (home.text, queue.text, page.text):  # the CSP allows no inline code
        assert not re.search(r"<script(?![^>]*\bsrc=\"/static/)|<script[^>]*>[^<]", html)
        assert " style=" not in html and not re.search(r"<[^>]*\son[a-z]+\s*=", html)

    blurred = _image(mia.get(f"/console/items/{item_id}/media/0"))
    assert max(blurred.size) <= 320 and _colourful(blurred) < 25  # grey (the box is amber)
    original = Image.open(io.BytesIO(photos["astronaut"]))
    assert blurred.size != original.size

    token = csrf(page.text)
    assert mia.post(f"/console/items/{item_id}/media/0/reveal").status_code == 403  # no CSRF
    shown = mia.post(f"/console/items/{item_id}/media/0/reveal", data={"csrf_token": token})
    revealed = _image(shown)
    assert shown.headers["x-consentry-look"] == "revealed"
    assert _colourful(revealed) > _colourful(blurred) + 20
    history = mia.get(f"/console/items/{item_id}").text
    assert re.search(r"revealed · mia · image 1", history)

    short = mia.post(f"/console/items/{item_id}/decision",
                     data={"csrf_token": token, "decision": "uphold", "clause": "II-1",
                           "rationale": "bad"})
    assert short.status_code == 422 and "at least 3 words" in short.text
    assert 'name="rationale"' in short.text and ">bad</textarea>" in short.text  # kept
    done = mia.post(f"/console/items/{item_id}/decision",
                    data={"csrf_token": token, "decision": "uphold", "clause": "II-1",
                          "rationale": WHY})
    assert done.status_code == 303
    after = mia.get(done.headers["location"]).text
    assert "Your decision is recorded" in after and "closed (uphold)" in after
    assert f"uphold under II-1: “{WHY}”" in after
    assert world.gate.account_state("u1").active_strikes == 1


def test_restricted_items_are_not_found_without_the_child_safety_role(world, sign_in, photos):
    world.gate.check_generation("make the schoolgirl in this photo wear lingerie",
                                [photos["astronaut"]], "p1")
    cara = sign_in("cara")
    item_id = _take(cara, "child_safety")
    assert cara.get(f"/console/items/{item_id}").status_code == 200
    mia = sign_in("mia")
    for path in (f"/console/items/{item_id}", f"/console/items/{item_id}/media/0",
                 "/console/queues/child_safety"):
        answer = mia.get(path)
        assert answer.status_code == 404, path
        assert "schoolgirl" not in answer.text
    token = _token(mia)
    for path in (f"/console/items/{item_id}/claim", "/console/queues/child_safety/next",
                 f"/console/items/{item_id}/media/0/reveal"):
        assert mia.post(path, data={"csrf_token": token}).status_code == 404, path
    decided = mia.post(f"/console/items/{item_id}/decision",
                       data={"csrf_token": token, "decision": "overturn", "clause": "OK-1",
                             "rationale": "nothing wrong with this one"})
    assert decided.status_code == 404
    assert world.gate.account_state("p1").status == "suspended"


def test_compliance_reads_items_but_cannot_decide_claim_or_reveal(world, sign_in, photos):
    world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    cora = sign_in("cora")
    home = cora.get("/console")
    assert "Your role reads only" in home.text and "Take next" not in home.text
    queue = cora.get("/console/queues/gate_review")
    item_id = int(re.search(r'href="/console/items/(\d+)"', queue.text).group(1))
    page = cora.get(f"/console/items/{item_id}")
    assert page.status_code == 200 and "make her" in page.text
    assert f'action="/console/items/{item_id}/decision"' not in page.text
    assert "Reveal image" not in page.text
    _image(cora.get(f"/console/items/{item_id}/media/0"))  # the blurred copy, as anyone
    token = csrf(page.text)
    for path in (f"/console/items/{item_id}/decision", f"/console/items/{item_id}/claim",
                 f"/console/items/{item_id}/media/0/reveal"):
        assert cora.post(path, data={"csrf_token": token}).status_code == 403, path


def test_an_item_held_by_someone_else_cannot_be_decided_by_another(world, sign_in, photos):
    world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    mia, noah = sign_in("mia"), sign_in("noah")
    item_id = _take(mia, "gate_review")
    page = noah.get(f"/console/items/{item_id}")
    assert "someone else, until" in page.text and 'id="decide"' not in page.text
    refused = noah.post(f"/console/items/{item_id}/decision",
                        data={"csrf_token": csrf(page.text), "decision": "overturn",
                              "clause": "OK-1", "rationale": "looks fine to me really"})
    assert refused.status_code == 409 and "someone else" in refused.text
    nothing = noah.post("/console/queues/gate_review/next",
                        data={"csrf_token": csrf(page.text)})
    assert nothing.headers["location"] == "/console/queues/gate_review?notice=empty"
    assert "Nothing in this queue is free" in noah.get(nothing.headers["location"]).text
    mia.post(f"/console/items/{item_id}/release", data={"csrf_token": _token(mia)})
    assert _take(noah, "gate_review") == item_id


def test_bulk_decisions_on_a_queue_page(world, sign_in, photos):
    held = [world.gate.check_generation("make her look hot", [photos["astronaut"]], f"b{i}")
            for i in range(3)]
    assert {h.decision for h in held} == {"review"}
    lee = sign_in("lee")
    queue = lee.get("/console/queues/gate_review")
    ids = [int(i) for i in re.findall(r'name="item" value="(\d+)"', queue.text)]
    assert len(ids) == 3
    token = csrf(queue.text)
    none = lee.post("/console/queues/gate_review/decisions",
                    data={"csrf_token": token, "decision": "overturn", "clause": "OK-1",
                          "rationale": "ordinary portraits, nothing sexual"})
    assert none.status_code == 422 and "Tick the items to decide" in none.text
    too_many = lee.post("/console/queues/gate_review/decisions",
                        data={"csrf_token": token, "decision": "overturn", "clause": "OK-1",
                              "rationale": "ordinary portraits, nothing sexual",
                              "item": [str(i) for i in range(501)]})
    assert too_many.status_code == 422 and "at most 500" in too_many.text
    no_clause = lee.post("/console/queues/gate_review/decisions",
                         data={"csrf_token": token, "decision": "overturn", "clause": "",
                               "rationale": "ordinary portraits, nothing sexual",
                               "item": [str(i) for i in ids]})
    assert no_clause.status_code == 422 and "choose the policy clause" in no_clause.text.lower()
    done = lee.post("/console/queues/gate_review/decisions",
                    data={"csrf_token": token, "decision": "overturn", "clause": "OK-1",
                          "rationale": "ordinary portraits, nothing sexual",
                          "item": [str(i) for i in ids]})
    assert done.status_code == 303, done.text
    assert "Nothing open in this queue" in lee.get("/console/queues/gate_review").text
    for i in range(3):
        assert world.gate.account_state(f"b{i}").active_strikes == 0


def test_the_reveal_limit_per_shift_offers_only_work_without_media(world, sign_in, photos,
                                                                    clock):
    world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    mia = sign_in("mia")
    item_id = _take(mia, "gate_review")
    token = _token(mia, f"/console/items/{item_id}")
    for _ in range(2):  # the limit in this world
        _image(mia.post(f"/console/items/{item_id}/media/0/reveal", data={"csrf_token": token}))
    third = mia.post(f"/console/items/{item_id}/media/0/reveal", data={"csrf_token": token})
    assert third.status_code == 429
    page = mia.get(f"/console/items/{item_id}").text
    assert "Reveal image" not in page and "reveal limit" in page
    home = mia.get("/console").text
    assert "revealed\n<strong>2</strong> of 2" in home and "Only work without images" in home
    lee = sign_in("lee")
    assert "<li>mia: 2</li>" in lee.get("/console").text  # leads see everyone's count


def test_sla_countdowns_turn_overdue(world, sign_in, photos, clock):
    world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    lee = sign_in("lee")
    clock.advance(hours=25)
    lee.cookies.clear()  # the session has expired meanwhile (idle 30 min): sign in again
    lee.post("/console/login", data={"username": "lee", "password": PASSWORD})
    queue = lee.get("/console/queues/gate_review").text
    assert re.search(r'class="sla overdue">overdue by 1 h', queue)
    home = lee.get("/console").text
    row = re.search(r'<tr id="queue-gate_review">(.*?)</tr>', home, re.S).group(1)
    assert '<td class="num overdue" data-label="Overdue">1</td>' in row


def test_unknown_queues_and_damaged_page_links_get_clear_answers(world, sign_in):
    mia = sign_in("mia")
    assert mia.get("/console/queues/nope").status_code == 404
    damaged = mia.get("/console/queues/gate_review?after=garbage")
    assert damaged.status_code == 422 and "damaged" in damaged.text


def test_a_reviewer_adds_a_requests_phrasing_to_the_prompt_bank(world, sign_in, photos):
    held = world.gate.check_generation("make her look hot", [photos["astronaut"]], "u1")
    mia = sign_in("mia")
    item_id = _take(mia, "gate_review")
    page = mia.get(f"/console/items/{item_id}")
    assert "Add this phrasing to the prompt bank" in page.text
    assert '<option value="CS-1">' not in page.text  # child-safety clauses: theirs only
    token = csrf(page.text)
    empty = mia.post(f"/console/items/{item_id}/prompt-bank",
                     data={"csrf_token": token, "bank_clause": "II-1", "bank_reason": ""})
    assert empty.status_code == 422 and "say why this phrasing is abuse" in empty.text.lower()
    added = mia.post(f"/console/items/{item_id}/prompt-bank",
                     data={"csrf_token": token, "bank_clause": "II-1",
                           "bank_reason": "sexualises a real woman's photo"})
    assert added.status_code == 303 and added.headers["location"].endswith("notice=banked")
    [entry] = world.gate.prompt_bank.entries()
    assert (entry.text, entry.clause, entry.source_check) == ("make her look hot", "II-1",
                                                               held.id)
    assert entry.author.endswith(":mia")
    cora = sign_in("cora")  # compliance decides nothing, banks nothing
    assert cora.post(f"/console/items/{item_id}/prompt-bank",
                     data={"csrf_token": token, "bank_clause": "II-1",
                           "bank_reason": "x y z"}).status_code == 403


def test_an_image_refusal_shows_its_provenance_and_whether_the_watermark_was_read(
        db, analyser, clock, tmp_path, platform, photos):
    """Every image counts as intimate here (threshold at its floor; no real nude photo is
    in the test data): a refused upload goes to a person, who sees what the image carries.
    The watermark is read only where it could change the decision (a face in an intimate
    image), and the page says when it was not."""
    policy = yaml.safe_load((Path(consentry.policy.__file__).parent / "default.yaml")
                            .read_text("utf-8"))
    policy["thresholds"]["intimate_image"] = 1e-9
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), "utf-8")
    world = build(db, analyser, clock, tmp_path, platform, policy_path=tmp_path / "policy.yaml")
    try:
        faceless = world.gate.check_upload(photos["coffee"], "u1")
        with_face = world.gate.check_upload(photos["hopper"], "u2")
        assert faceless.decision == with_face.decision == "block"
        assert faceless.provenance.watermark is None
        assert with_face.provenance.watermark is not None
        with TestClient(world.app, follow_redirects=False) as lee:
            assert lee.post("/console/login", data={"username": "lee", "password": PASSWORD}
                            ).status_code == 303
            queue = lee.get("/console/queues/image_refusals").text
            shown = {}
            for item_id in sorted(set(re.findall(r'href="/console/items/(\d+)"', queue))):
                page = lee.get(f"/console/items/{item_id}").text
                provenance = re.search(r'<dl id="provenance">(.*?)</dl>', page, re.S)
                assert provenance, "the item shows no provenance"
                text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", provenance.group(1)))
                shown[re.search(r"chk_[kx][0-9a-f]{32}", page).group(0)] = text
    finally:
        world.close()
    assert "C2PA manifest absent" in shown[faceless.id]
    assert "Watermark not read (it could not change this decision)" in shown[faceless.id]
    assert re.search(r"Watermark not detected \(\d+% of the mark\)", shown[with_face.id])
