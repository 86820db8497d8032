"""The real server killed with ``kill -9`` in the middle of work, then restarted: every
recorded takedown is finished and its requester told, nothing that was acknowledged is
lost, retried checks strike once. And the server believes no forwarded header from a
local peer unless told to. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from aiosmtpd.controller import Controller
from PIL import Image
from removal_platform import SECRET
from server_process import ServerProcess, free_port, wait_for
from sqlalchemy import func, select

from consentry.access import Scope, create_api_key
from consentry.banks.services import BankServices, entry_hashes
from consentry.signals.hashing import fingerprint
from consentry.store.models import (
    CaseEvent,
    CaseJob,
    CheckRecord,
    Notification,
    Strike,
    TakedownCase,
)

pytestmark = pytest.mark.slow

TIDA = {"regime": "take_it_down", "signature": "Sam Doe",
        "statement": "shared without my consent", "declarations": ["not_consensual"]}


class MailServer:
    """A real SMTP server (aiosmtpd) that holds mail to 'slow' recipients for a long
    time, so that requests are recorded but not yet answered when the server dies."""

    def __init__(self) -> None:
        self.slow = True
        self.delivered: list[str] = []
        server = self

        class Handler:
            async def handle_DATA(self, _server, _session, envelope):
                if server.slow and any("slow" in r for r in envelope.rcpt_tos):
                    await asyncio.sleep(60)
                server.delivered += envelope.rcpt_tos
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def mail():
    server = MailServer()
    yield server
    server.close()


def _photo(seed: int) -> bytes:
    """A distinct textured image per seed (PDQ needs texture to be confident)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _env(db, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CONSENTRY_DATABASE_URL": db.url, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
            "CONSENTRY_ANALYSIS_TIMEOUT_S": "20", **extra}


_wait = wait_for


def test_takedowns_recorded_before_a_kill_9_are_finished_and_told_after_restart(
        db, tmp_path, platform, mail):
    banks = BankServices.open(db)
    registered = 8
    for i in range(registered):
        banks.content.register(f"post-{i}", "upload", entry_hashes(fingerprint(_photo(i))),
                               account_id=f"uploader-{i}", url=f"https://social.example/p/{i}")
    banks.close()
    env = _env(db, tmp_path, CONSENTRY_REMOVAL_CALLBACK_URL=platform.url,
               CONSENTRY_REMOVAL_CALLBACK_SECRET=SECRET, CONSENTRY_SMTP_HOST="127.0.0.1",
               CONSENTRY_SMTP_PORT=str(mail.port), CONSENTRY_SMTP_FROM="safety@example.org",
               CONSENTRY_JOB_LEASE_S="2",
               # Each request comes "through" our proxy from its own client.
               CONSENTRY_TRUSTED_PROXIES="127.0.0.1/32")
    server = ServerProcess(env, tmp_path / "server.log").start()

    def submit(i: int) -> dict | None:
        who = "fast" if i % 2 == 0 else "slow"
        body = {**TIDA, "email": f"{who}-{i}@example.org",
                "urls": [f"https://social.example/p/{i % (2 * registered)}"]}
        try:
            r = httpx.post(f"{server.url}/v1/takedowns", json=body, timeout=90,
                           headers={"X-Forwarded-For": f"198.51.100.{i + 1}"})
        except httpx.HTTPError:
            return None  # the server died before answering
        assert r.status_code == 201, r.text
        return r.json()

    sent = 24
    with ThreadPoolExecutor(sent) as pool:
        futures = [pool.submit(submit, i) for i in range(sent)]
        _wait(lambda: sum(f.done() for f in futures) >= sent // 2, 60, "the fast answers")

        def recorded() -> int:
            with db.transaction() as s:
                return s.scalar(select(func.count()).select_from(TakedownCase)) or 0

        _wait(lambda: recorded() == sent, 60, "every request to be recorded")
        server.kill9()
        answers = [f.result() for f in futures]
    answered = {a["case"]["case"] for a in answers if a}
    with db.transaction() as s:
        numbers = set(s.scalars(select(TakedownCase.number)))
        unfinished = s.scalar(select(func.count()).select_from(CaseJob).where(
            CaseJob.state == "pending")) or 0
    assert answered <= numbers  # every acknowledged request was recorded
    assert unfinished >= sent - len(answered) > 0  # the kill left work undone

    mail.slow = False
    began = time.monotonic()
    restarted = ServerProcess(env, tmp_path / "server.log").start()
    try:
        def finished() -> bool:
            with db.transaction() as s:
                return not s.scalar(select(func.count()).select_from(CaseJob).where(
                    CaseJob.state != "done"))
        _wait(finished, 90, "every recorded case to be finished")
        _wait(lambda: len(platform.removed) == registered, 60, "every removal")
        recovery_s = time.monotonic() - began
    finally:
        restarted.stop()

    with db.transaction() as s:
        rows = s.scalars(select(TakedownCase)).all()
        # A duplicate merged into another case is worked on that case.
        outcome = {r.number: set(s.scalars(select(CaseEvent.kind).where(
            CaseEvent.case_id == r.id))) for r in rows if r.merged_into is None}
        told = {r.number for r in rows if s.scalar(select(func.count()).select_from(
            Notification).where(Notification.case_id == r.id,
                                Notification.kind == "request_received",
                                Notification.delivered.is_(True)))}
    assert all(kinds & {"located", "not_found", "already_removed"}
               for kinds in outcome.values()), outcome
    assert told == numbers  # every requester got the acknowledgement
    assert platform.removed == {f"post-{i}" for i in range(registered)}
    print(f"\nkill -9 during takedown intake ({db.engine.dialect.name}): {sent} requests, "
          f"{len(answered)} answered before the kill, {len(numbers)} recorded, "
          f"{len(numbers) - len(answered)} recorded without an answer; after restart "
          f"{len(numbers)}/{len(numbers)} finished and told, {len(platform.removed)}/"
          f"{registered} items removed, {recovery_s:.1f} s from restart to all finished")


def test_checks_answered_before_a_kill_9_are_kept_and_retries_strike_once(
        db, tmp_path, photos):
    key = create_api_key(db, "pipeline", [Scope.CHECK])[1]
    env = _env(db, tmp_path)
    server = ServerProcess(env, tmp_path / "server.log").start()
    photo = base64.b64encode(photos["astronaut"]).decode()
    headers = {"Authorization": f"Bearer {key}"}
    sent = 40

    def check(i: int, url: str) -> dict | None:
        body = {"prompt": "put her in a bikini" if i % 2 else "make it sepia",
                "images": [photo], "account": f"acct-{i}"}
        try:
            r = httpx.post(f"{url}/v1/check/generation", json=body, timeout=90,
                           headers={**headers, "Idempotency-Key": f"key-{i}"})
        except httpx.HTTPError:
            return None
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(check, i, server.url) for i in range(sent)]
        _wait(lambda: sum(f.done() for f in futures) >= 8, 120, "some checks to be answered")
        server.kill9()
        first = [f.result() for f in futures]
    answered = {i: v for i, v in enumerate(first) if v}
    assert 0 < len(answered) < sent

    restarted = ServerProcess(env, tmp_path / "server.log").start()
    try:
        with ThreadPoolExecutor(8) as pool:
            retried = list(pool.map(lambda i: check(i, restarted.url), range(sent)))
    finally:
        restarted.stop()
    assert all(v is not None for v in retried)
    for i, verdict in answered.items():
        assert retried[i]["id"] == verdict["id"]  # the recorded answer, replayed
    with db.transaction() as s:
        kept = set(s.scalars(select(CheckRecord.id)))
        strikes = dict(s.execute(select(Strike.account_id, func.count())
                                 .group_by(Strike.account_id)).all())
    assert {v["id"] for v in answered.values()} <= kept  # nothing acknowledged was lost
    blocked = {f"acct-{i}" for i, v in enumerate(retried) if v["decision"] == "block"}
    assert blocked == {f"acct-{i}" for i in range(1, sent, 2)}
    assert strikes == dict.fromkeys(blocked, 1)  # every refused request struck exactly once
    print(f"\nkill -9 during checks ({db.engine.dialect.name}): {sent} checks, "
          f"{len(answered)} answered before the kill, all {len(answered)} kept and replayed "
          f"after restart; {sent} retried: {len(blocked)} refused, each struck once")


def test_a_local_peer_cannot_rotate_x_forwarded_for_to_escape_limits(db, tmp_path):
    server = ServerProcess(_env(db, tmp_path), tmp_path / "server.log").start()
    try:
        codes = [httpx.get(f"{server.url}/v1/takedowns/TD-{i:010d}", timeout=30, headers={
            "X-Case-PIN": "12345678", "X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(25)]
    finally:
        server.stop()
    assert codes[:20] == [404] * 20 and set(codes[20:]) == {429}, codes
    # No line per request: no addresses or paths (which carry case numbers) in the log.
    log = (tmp_path / "server.log").read_text()
    assert "TD-" not in log and "127.0.0.1:" not in log.replace(server.url, "")
