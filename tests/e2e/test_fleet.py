"""A fleet (issue 13, done when): two API replicas (``consentry serve``) and a worker
(``consentry worker``) sharing PostgreSQL, background work on the job queue. A takedown
sent to one replica is removed by the worker; the worker killed with ``kill -9`` in the
middle of the platform callback loses nothing (a new worker finishes the job, the victim
is told once); a bank entry added through the other replica blocks the next upload on
the first. PostgreSQL only: it runs whenever CONSENTRY_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import base64
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from platform_content import register
from postgres_schema import POSTGRES_URL, postgres_schema
from removal_platform import SECRET, RemovalPlatform
from server_process import ServerProcess, wait_for
from sqlalchemy import func, select, text

from consentry.access import Scope, create_api_key
from consentry.banks.services import BankServices
from consentry.store import Database
from consentry.store.models import Notification, TakedownCase

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not POSTGRES_URL, reason="a fleet shares PostgreSQL: set CONSENTRY_TEST_POSTGRES_URL")]

ROOT = Path(__file__).resolve().parents[2]
TIDA = {"regime": "take_it_down", "signature": "Sam Doe", "email": "sam@example.org",
        "statement": "shared without my consent", "declarations": ["not_consensual"]}


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema("fleet") as url:
        yield url


class Worker(ServerProcess):
    """``consentry worker`` in a child process (stopped and killed as a server is)."""

    def start(self, timeout_s: float = 0) -> Worker:
        self.launch("worker")
        return self


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((256, 256), Image.Resampling.BICUBIC).save(buf, "JPEG",
                                                                           quality=90)
    return buf.getvalue()


_wait = wait_for


def _hold_first_callback(platform: RemovalPlatform) -> tuple[threading.Event, threading.Event]:
    """The platform holds the first removal callback open until told, then fails it as if
    it never arrived: the worker making it is 'mid-job' for as long as the test needs."""
    arrived, release = threading.Event(), threading.Event()
    handle = platform.handle

    def held(path: str, body: bytes, signature: str, key: str) -> int:
        if not arrived.is_set():
            arrived.set()
            release.wait(60)
            return 503
        return handle(path, body, signature, key)

    platform.handle = held  # type: ignore[method-assign]
    return arrived, release


def test_two_replicas_and_a_worker_share_postgresql(pg_url, tmp_path, platform):
    db = Database(pg_url)
    db.migrate()
    banks = BankServices.open(db)
    register_photo = _photo(1)
    register(_Registrar(banks), "post-1", register_photo, "uploader-1",
             url="https://social.example/p/1")
    banks.close()
    admin = {"Authorization": f"Bearer {create_api_key(db, 'ops', [Scope.BANKS])[1]}"}
    checker = {"Authorization": f"Bearer {create_api_key(db, 'pipeline', [Scope.CHECK])[1]}"}
    arrived, release = _hold_first_callback(platform)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        "CONSENTRY_DATABASE_URL": pg_url, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
        "CONSENTRY_JOBS": "procrastinate", "CONSENTRY_JOB_LEASE_S": "2",
        "CONSENTRY_SECRET_KEY": "fleet-test-secret-key-shared-by-every-process",
        "CONSENTRY_REMOVAL_CALLBACK_URL": platform.url,
        "CONSENTRY_REMOVAL_CALLBACK_SECRET": SECRET,
        "CONSENTRY_SEMANTIC_LAYER": "0", "CONSENTRY_ANALYSIS_TIMEOUT_S": "30"}
    first = ServerProcess(env, tmp_path / "first.log")
    second = ServerProcess(env, tmp_path / "second.log")
    workers: list[Worker] = []
    try:
        first.start(timeout_s=180)
        second.start(timeout_s=180)
        workers.append(Worker(env, tmp_path / "worker-1.log").start())

        # A takedown sent to one replica: the worker makes the callback ...
        r = httpx.post(f"{first.url}/v1/takedowns", json={
            **TIDA, "urls": ["https://social.example/p/1"]}, timeout=60)
        assert r.status_code == 201, r.text
        number = r.json()["case"]["case"]
        assert arrived.wait(90), (tmp_path / "worker-1.log").read_text()[-3000:]
        # ... and is killed while the platform has it.
        workers[0].kill9()
        release.set()
        assert platform.received == []
        workers.append(Worker(env, tmp_path / "worker-2.log").start())
        _wait(lambda: "post-1" in platform.removed, 90, "a new worker to finish the removal")
        assert [(c.action, c.content_id, c.case) for c in platform.received] == [
            ("remove", "post-1", number)]

        def closed() -> bool:
            with db.transaction() as s:
                return s.scalar(select(TakedownCase.closed_at).where(
                    TakedownCase.number == number)) is not None

        _wait(closed, 30, "the case to close")

        def told(kind: str) -> int:
            with db.transaction() as s:
                return s.scalar(select(func.count()).select_from(Notification).where(
                    Notification.kind == kind)) or 0

        # The dead worker's job itself is retried, not left 'doing' for ever.
        def none_doing() -> bool:
            with db.transaction() as s:
                return not s.scalar(text(
                    "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' "
                    "AND task_name <> 'consentry.jobs.retry_stalled'"))

        _wait(none_doing, 60, "the killed worker's job to be retried")
        assert told("request_received") == 1
        assert told("content_removed") == 1  # the victim is told once
        assert told("statement_of_reasons") == 1

        # A bank entry added through the second replica blocks the next upload on the first.
        upload = base64.b64encode(_photo(2)).decode()

        def check() -> str:
            r = httpx.post(f"{first.url}/v1/check/upload", headers=checker, timeout=60,
                           json={"image": upload, "account": "uploader-2"})
            assert r.status_code == 200, r.text
            return str(r.json()["decision"])

        assert check() == "allow"
        r = httpx.post(f"{second.url}/v1/banks", headers=admin, timeout=30, json={
            "name": "victims", "kind": "block", "category": "ncii",
            "description": "hashes from victims"})
        assert r.status_code == 201, r.text
        r = httpx.post(f"{second.url}/v1/banks/victims/entries", headers=admin, timeout=60,
                       json={"image": upload})
        assert r.status_code == 201, r.text
        assert check() == "block"
    finally:
        release.set()
        for w in workers:
            w.stop()
        first.stop()
        second.stop()
        db.dispose()
    for w in workers[1:]:
        assert w.proc is not None and w.proc.returncode == 0, "a worker stops cleanly on SIGTERM"


class _Registrar:
    """What ``platform_content.register`` needs of a takedown service: its banks."""

    def __init__(self, banks: BankServices) -> None:
        self.banks = banks
