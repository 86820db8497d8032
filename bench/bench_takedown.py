"""Takedown time at scale: from a confirmed TAKE IT DOWN request to the platform's last
removal callback, with every copy of the image found in a large content index.

Goal: "From confirmation to the last callback, removal of all copies in a 1M-item content
index takes under 60 seconds."

    .venv/bin/python bench/bench_takedown.py [--items 1000000] [--copies 3] [--repeat 3]
    .venv/bin/python bench/bench_takedown.py --items 20000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

How:

* Build (not measured against the goal): migrate a fresh database (a SQLite file in a
  temporary folder by default; a PostgreSQL URL gets a fresh schema, dropped at the end),
  bulk-insert ``--items`` filler ``content_items`` with random MD5/SHA-256 and, like a real
  registration, six PDQ hashes each in ``content_hashes`` (variants full, crop100, crop95,
  crop90, crop85, crop80: ``entry_hashes(fingerprint(...)).indexed()``), all from a seeded
  numpy RNG. Then, per request, ``--copies`` real copies of one real photo (re-encoded,
  resized, mirrored, ...) are registered with ``ContentIndex.register`` under their own
  uploaders and URLs.
* Warm-up, as a server would be: ``BankServices.open`` with a content index directory
  (it loads every content hash into the in-memory PDQ index and saves it; a second
  ``ContentIndex`` on the same directory shows what a restart costs), a
  ``TakedownService`` with an outbox sender and a signed callback to a loopback platform
  (``tests/removal_platform.py``, which verifies each HMAC signature), and one search so
  the index kernels are compiled.
* Measured, per request: from calling ``service.submit`` with a complete TAKE IT DOWN
  request naming one copy by URL until the platform has accepted the last removal
  callback. ``submit`` locates the copies, banks the hashes and makes the callbacks
  before it returns. The service's steps are timed by wrapping its methods on the
  instance (the service itself is unchanged). Each request uses a different photo, so
  every request removes a fresh set of copies. The case must end ``removed`` with exactly
  the copies removed, the platform must have received exactly those content ids, and
  no callback may have a bad signature.

Prints figures; asserts nothing beyond the correctness checks above. Timings depend on
the machine and on what else it runs.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import statistics
import sys
import tempfile
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageOps
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from removal_platform import SECRET, RemovalPlatform  # noqa: E402

from consentry.banks.content import ContentIndex  # noqa: E402
from consentry.banks.services import BankServices, entry_hashes  # noqa: E402
from consentry.cases import takedowns as takedowns_module  # noqa: E402
from consentry.cases.callback import PlatformCallback  # noqa: E402
from consentry.cases.case import CaseStatus  # noqa: E402
from consentry.cases.intake import (  # noqa: E402
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
)
from consentry.cases.senders import OutboxSender  # noqa: E402
from consentry.cases.takedowns import TakedownService  # noqa: E402
from consentry.policy import load_policy  # noqa: E402
from consentry.signals.hashing import fingerprint  # noqa: E402
from consentry.store import Database  # noqa: E402
from consentry.store.models import ContentHash, ContentItem  # noqa: E402

GOAL_S = 60.0
# What a registration stores per image (EntryHashes.indexed() of entry_hashes(fp)).
VARIANTS = ("full", "crop100", "crop95", "crop90", "crop85", "crop80")
FILLER_ACCOUNTS = 50_000
CHUNK = 20_000  # filler items per insert transaction


# --- the real photos and their copies ---------------------------------------------------


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from skimage import data

        return getattr(data, name)()

    return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]

    return load


# Photos that ship with the installed packages (no download); one per request.
PHOTOS: list[tuple[str, Callable[[], np.ndarray]]] = [
    ("astronaut", _skimage("astronaut")),
    ("coffee", _skimage("coffee")),
    ("chelsea", _skimage("chelsea")),
    ("rocket", _skimage("rocket")),
    ("china", _sklearn(0)),
    ("flower", _sklearn(1)),
]


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _scaled(img: Image.Image, factor: float) -> Image.Image:
    return img.resize((round(img.width * factor), round(img.height * factor)))


# How copies of one photo turn up on a platform; with more copies than this the list is
# cycled with a different JPEG quality and a slightly smaller size each round.
COPY_KINDS: list[tuple[str, Callable[[Image.Image, int, float], bytes]]] = [
    ("reencoded", lambda im, q, s: _jpeg(_scaled(im, s), q - 25)),
    ("resized", lambda im, q, s: _jpeg(_scaled(im, 0.6 * s), q)),
    ("mirrored", lambda im, q, s: _jpeg(ImageOps.mirror(_scaled(im, s)), q)),
    ("lowq", lambda im, q, s: _jpeg(_scaled(im, s), q - 45)),
    ("resized80", lambda im, q, s: _jpeg(_scaled(im, 0.8 * s), q - 15)),
    ("mirrored-small", lambda im, q, s: _jpeg(ImageOps.mirror(_scaled(im, 0.7 * s)), q - 20)),
    ("highq", lambda im, q, s: _jpeg(_scaled(im, s), min(q + 10, 98))),
    ("resized50", lambda im, q, s: _jpeg(_scaled(im, 0.5 * s), q)),
]


def copies_of(pixels: np.ndarray, n: int) -> list[tuple[str, bytes]]:
    img = Image.fromarray(pixels).convert("RGB")
    out: list[tuple[str, bytes]] = []
    seen: set[bytes] = set()
    i = 0
    while len(out) < n:
        name, make = COPY_KINDS[i % len(COPY_KINDS)]
        rnd = i // len(COPY_KINDS)
        data = make(img, 85 - 3 * rnd, 1.0 - 0.02 * rnd)
        if data not in seen:  # distinct bytes: every copy is its own item
            seen.add(data)
            out.append((f"{name}-{rnd}" if rnd else name, data))
        i += 1
    return out


# --- building the index ---------------------------------------------------------------


def _hex_rows(a: np.ndarray) -> list[str]:
    width = a.shape[1] * 2
    flat = a.tobytes().hex()
    return [flat[i:i + width] for i in range(0, len(flat), width)]


def insert_filler(db: Database, n: int, seed: int, progress: Progress) -> None:
    """``n`` items with random hashes, ids 1..n and hash ids 1..6n, in chunked
    executemany inserts (one transaction per chunk)."""
    rng = np.random.default_rng(seed)
    items, hashes = ContentItem.__table__, ContentHash.__table__
    now = datetime.now(UTC)
    per = len(VARIANTS)
    task = progress.add_task(f"filler: {n:,} items, {n * per:,} hashes", total=n)
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        md5 = _hex_rows(rng.integers(0, 256, (k, 16), dtype=np.uint8))
        sha = _hex_rows(rng.integers(0, 256, (k, 32), dtype=np.uint8))
        pdq = _hex_rows(rng.integers(0, 256, (k * per, 32), dtype=np.uint8))
        item_rows = [{
            "id": start + i + 1, "content_id": f"filler-{start + i:07d}", "kind": "upload",
            "account_id": f"acct-{(start + i) % FILLER_ACCOUNTS}",
            "url": f"https://social.example/f/{start + i}", "md5": md5[i], "sha256": sha[i],
            "pdq": pdq[i * per], "registered_at": now, "removed_at": None,
        } for i in range(k)]
        hash_rows = [{
            "id": (start + i) * per + j + 1, "item_id": start + i + 1, "pdq": pdq[i * per + j],
            "variant": variant,
        } for i in range(k) for j, variant in enumerate(VARIANTS)]
        with db.engine.begin() as conn:
            conn.execute(insert(items), item_rows)
            conn.execute(insert(hashes), hash_rows)
        progress.advance(task, k)
    if db.engine.dialect.name == "postgresql":  # explicit ids: move the sequences on
        with db.engine.begin() as conn:
            for table in ("content_items", "content_hashes"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                  f"(SELECT max(id) FROM {table}))"))
    progress.remove_task(task)


@dataclass
class Request:
    photo: str
    copies: dict[str, str]  # content id -> URL
    named_url: str


def register_copies(index: ContentIndex, repeat: int, n_copies: int,
                    progress: Progress) -> list[Request]:
    task = progress.add_task(f"registering {repeat} x {n_copies} real copies",
                             total=repeat * n_copies)
    out = []
    for r in range(repeat):
        name, load = PHOTOS[r]
        ids: dict[str, str] = {}
        for i, (kind, data) in enumerate(copies_of(load(), n_copies)):
            content_id, url = f"{name}-{kind}", f"https://social.example/p/{name}/{kind}"
            index.register(content_id, "upload", entry_hashes(fingerprint(data)),
                           account_id=f"uploader-{name}-{i}", url=url)
            ids[content_id] = url
            progress.advance(task)
        out.append(Request(name, ids, next(iter(ids.values()))))
    progress.remove_task(task)
    return out


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    """A fresh database: a SQLite file in ``tmp``, or a new schema on a PostgreSQL
    server (dropped afterwards). Yields (url, description)."""
    if url is None:
        yield f"sqlite:///{tmp / 'bench.db'}", "SQLite (file, WAL)"
        return
    if not url.startswith("postgresql"):
        yield url, url.split(":", 1)[0]
        return
    schema = f"bench_takedown_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        sep = "&" if "?" in url else "?"
        yield f"{url}{sep}options=-csearch_path%3D{schema}", f"PostgreSQL (schema {schema})"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- measuring ------------------------------------------------------------------------


class TimedPlatform(RemovalPlatform):
    """The loopback platform, noting when it accepted each removal."""

    def __post_init__(self) -> None:
        self.accepted: list[tuple[float, str, str]] = []  # (perf_counter, case, content id)
        super().__post_init__()

    def handle(self, path: str, body: bytes, signature: str, key: str) -> int:
        before = len(self.received)
        status = super().handle(path, body, signature, key)
        with self._lock:
            for r in self.received[before:]:
                if r.action == "remove":
                    self.accepted.append((time.perf_counter(), r.case, r.content_id))
        return status


@dataclass
class Spans:
    """(name, start, end) of each wrapped call, in perf_counter seconds."""

    calls: list[tuple[str, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wrap(self, obj: object, name: str, label: str | None = None) -> None:
        fn = getattr(obj, name)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.calls.append((label or name, start, time.perf_counter()))

        setattr(obj, name, timed)

    def first(self, name: str) -> tuple[float, float]:
        return next((s, e) for n, s, e in self.calls if n == name)

    def total(self, name: str) -> float:
        return sum(e - s for n, s, e in self.calls if n == name)

    def count(self, name: str) -> int:
        return sum(1 for n, _, _ in self.calls if n == name)


@dataclass
class Outcome:
    photo: str
    total_s: float  # submit called -> last removal callback accepted
    returned_s: float  # submit called -> submit returned
    phases: dict[str, float]
    searches: int
    copies: int
    located: int
    removed: int
    ok: bool
    problems: list[str]


def tida(url: str) -> TakedownSubmission:
    return TakedownSubmission(
        regime=Regime.TAKE_IT_DOWN, locator=ContentLocator(urls=(url,)),
        requester_name="Sam Doe", email="sam@example.org", signature="Sam Doe",
        relationship=Relationship.SELF,
        declarations=frozenset({Declaration.NOT_CONSENSUAL}),
        statement="This photo of me was shared without my consent.")


def run_request(service: TakedownService, platform: TimedPlatform, req: Request) -> Outcome:
    spans = Spans()
    content = service.banks.content
    wrapped = ((service, "_acknowledge", None), (takedowns_module, "locate", None),
               (takedowns_module, "bank_for_case", "bank"),
               (service.removals, "dispatch", None), (service.removals, "settle", None),
               (content, "copies", None), (content._index, "search", "pdq_search"))
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in wrapped]
    for obj, name, label in wrapped:
        spans.wrap(obj, name, label)
    try:
        t0 = time.perf_counter()
        result = service.submit(tida(req.named_url))
        t_returned = time.perf_counter()
    finally:
        for obj, name, fn in originals:
            if isinstance(obj, types.ModuleType):
                setattr(obj, name, fn)
            else:
                vars(obj).pop(name, None)
    number = result.case.number
    accepted = [(t, c) for t, case, c in platform.accepted if case == number]
    last = max((t for t, _ in accepted), default=float("nan"))
    loc_s, loc_e = spans.first("locate")
    bank_s, bank_e = spans.first("bank")
    disp_s, _ = spans.first("dispatch")
    phases = {
        "intake": loc_s - t0,  # case row, PIN (scrypt), acknowledgement notice
        "acknowledge": spans.total("_acknowledge"),
        "locate": loc_e - loc_s,
        "pdq_search": spans.total("pdq_search"),
        "copies_sql": spans.total("copies") - spans.total("pdq_search"),
        "queue": bank_s - loc_e,  # located/queued events and removal jobs
        "bank": bank_e - bank_s,
        "callbacks": last - disp_s,  # claim + signed POSTs until the last is accepted
        "after": t_returned - last,  # finish, strikes, notices, view
    }
    view = service.view(number)
    expected = set(req.copies)
    problems = []
    if view.status is not CaseStatus.REMOVED:
        problems.append(f"status {view.status.value}")
    if {i.content_id for i in view.located} != expected:
        problems.append(f"located {sorted(i.content_id for i in view.located)}")
    if set(view.removed) != expected:
        problems.append(f"removed {sorted(view.removed)}")
    if sorted(c for _, c in accepted) != sorted(expected):
        problems.append(f"platform received {sorted(c for _, c in accepted)}")
    if platform.bad_signatures:
        problems.append(f"{platform.bad_signatures} bad signatures")
    return Outcome(req.photo, last - t0, t_returned - t0, phases, spans.count("pdq_search"),
                   len(expected), len(view.located), len(view.removed), not problems,
                   problems)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


# --- driver ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000,
                        help="filler content items (each with 6 PDQ hashes)")
    parser.add_argument("--copies", type=int, default=3,
                        help="copies of the photo on the platform, per request")
    parser.add_argument("--repeat", type=int, default=3,
                        help=f"requests, each for a different photo (at most {len(PHOTOS)})")
    parser.add_argument("--database-url", default=None,
                        help="default: a SQLite file in a temporary folder; a PostgreSQL "
                             "URL gets a fresh schema, dropped at the end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 1 <= args.repeat <= len(PHOTOS):
        parser.error(f"--repeat must be 1..{len(PHOTOS)}")
    if args.copies < 1:
        parser.error("--copies must be at least 1")

    console = Console(width=150)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                        console=console)
    with tempfile.TemporaryDirectory(prefix="bench-takedown-") as tmpdir, \
            database(args.database_url, Path(tmpdir)) as (url, backend):
        tmp = Path(tmpdir)
        db = Database(url)
        with progress:
            t = time.perf_counter()
            db.migrate()
            # Opened while empty: registering never loads the filler into its own index.
            registrar = ContentIndex(db)
            insert_filler(db, args.items, args.seed, progress)
            filler_s = time.perf_counter() - t
            t = time.perf_counter()
            requests = register_copies(registrar, args.repeat, args.copies, progress)
            del registrar
            register_s = time.perf_counter() - t
            build_s = filler_s + register_s
            console.log(f"build: {args.items:,} filler items in {filler_s:.1f} s "
                        f"({args.items / filler_s:,.0f} items/s), "
                        f"{args.repeat * args.copies} real copies in {register_s:.1f} s")

            task = progress.add_task("loading the content index (BankServices.open)",
                                     total=None)
            rss_before = rss_mb()
            t = time.perf_counter()
            banks = BankServices.open(db, content_index_dir=tmp / "content-index")
            load_s = time.perf_counter() - t  # read every row, build, save to disk
            t = time.perf_counter()
            restarted = ContentIndex(db, index_dir=tmp / "content-index")  # load the saved one
            restart_s = time.perf_counter() - t
            assert restarted.size == banks.content.size, "the saved index lost hashes"
            del restarted
            t = time.perf_counter()
            resynced = banks.content.sync()
            sync_s = time.perf_counter() - t
            rng = np.random.default_rng(args.seed + 1)
            t = time.perf_counter()
            banks.content.copies(None, rng.integers(0, 256, (8, 32), dtype=np.uint8))
            first_search_s = time.perf_counter() - t
            rss_after = rss_mb()
            progress.remove_task(task)
            hashes = banks.content.size
            console.log(f"index: {hashes:,} hashes loaded in {load_s:.1f} s (after a "
                        f"restart: {restart_s:.1f} s); re-sync "
                        f"{resynced} rows in {sync_s * 1e3:.0f} ms; first search "
                        f"{first_search_s * 1e3:.0f} ms; RSS {rss_before:,.0f} -> "
                        f"{rss_after:,.0f} MB")

            platform = TimedPlatform()
            callback = PlatformCallback(platform.url, SECRET)
            service = TakedownService(db, banks, load_policy(),
                                      sender=OutboxSender(tmp / "outbox"), callback=callback)
            outcomes = []
            try:
                task = progress.add_task("takedown requests", total=len(requests))
                for req in requests:
                    out = run_request(service, platform, req)
                    outcomes.append(out)
                    console.log(f"{req.photo}: {out.total_s:.3f} s to the last callback, "
                                f"{out.removed}/{out.copies} removed"
                                + ("" if out.ok else f"  PROBLEMS: {'; '.join(out.problems)}"))
                    progress.advance(task)
                progress.remove_task(task)
            finally:
                callback.close()
                platform.close()
                banks.close()
                db.dispose()
        rss_end = rss_mb()

    print_tables(console, args, backend, hashes, build_s, filler_s, load_s, restart_s,
                 rss_after, rss_after - rss_before, rss_end, outcomes)


def print_tables(console: Console, args: argparse.Namespace, backend: str, hashes: int,
                 build_s: float, filler_s: float, load_s: float, restart_s: float, rss: float,
                 rss_index: float, rss_end: float, outcomes: list[Outcome]) -> None:
    median = statistics.median(o.total_s for o in outcomes)
    worst = max(o.total_s for o in outcomes)
    all_ok = all(o.ok for o in outcomes)
    passed = all_ok and worst < GOAL_S

    detail = Table(title="Takedown requests: seconds from submit (a confirmed, complete "
                         "request) to the platform accepting the last removal callback")
    cols = ("request", "copies found / removed", "to last callback s", "intake",
            "(ack notice)", "locate", "(PDQ search)", "(copies SQL)", "queue", "bank",
            "callbacks", "submit returned s", "checks")
    for col in cols:
        detail.add_column(col, justify="left" if col in {"request", "checks"} else "right")
    for o in outcomes:
        p = o.phases
        detail.add_row(
            o.photo, f"{o.located} / {o.removed} of {o.copies}", f"{o.total_s:.3f}",
            f"{p['intake']:.3f}", f"{p['acknowledge']:.3f}", f"{p['locate']:.3f}",
            f"{p['pdq_search']:.3f} ({o.searches}x)", f"{p['copies_sql']:.3f}",
            f"{p['queue']:.3f}", f"{p['bank']:.3f}", f"{p['callbacks']:.3f}",
            f"{o.returned_s:.3f}", "ok" if o.ok else "; ".join(o.problems))
    keys = ("intake", "acknowledge", "locate", "pdq_search", "copies_sql", "queue", "bank",
            "callbacks")
    med = {k: statistics.median(o.phases[k] for o in outcomes) for k in keys}
    detail.add_row("median", "", f"{median:.3f}", *(f"{med[k]:.3f}" for k in keys),
                   f"{statistics.median(o.returned_s for o in outcomes):.3f}", "",
                   style="bold")
    console.print(detail)

    summary = Table(title=f"Takedown benchmark ({backend}; {os.cpu_count()} cores)")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    rows = [
        ("content items (filler + real copies)",
         f"{args.items:,} + {args.repeat * args.copies:,}"),
        ("hashes in the PDQ index", f"{hashes:,}"),
        ("build s (filler insert; not measured)", f"{build_s:.1f} ({filler_s:.1f})"),
        ("index first load + save s (not measured)", f"{load_s:.1f}"),
        ("index load after a restart s (saved index)", f"{restart_s:.1f}"),
        ("RSS MB after load (of which the index)", f"{rss:,.0f} ({rss_index:+,.0f})"),
        ("requests (a different photo each)", str(len(outcomes))),
        ("copies found / removed, per request",
         ", ".join(f"{o.located}/{o.removed} of {o.copies}" for o in outcomes)),
        ("confirmation -> last callback s, per request",
         ", ".join(f"{o.total_s:.3f}" for o in outcomes)),
        ("confirmation -> last callback s, median", f"{median:.3f}"),
        ("goal s", f"{GOAL_S:.0f}"),
        ("result", "[green]PASS[/green]" if passed else "[red]FAIL[/red]"),
    ]
    for row in rows:
        summary.add_row(*row)
    console.print(summary)
    console.print(f"Worst request {worst:.2f} s against the {GOAL_S:.0f} s goal; "
                  f"{'all' if all_ok else 'NOT all'} copies removed with valid signatures. "
                  f"Index load (server start, not in the figure) {load_s:.1f} s; "
                  f"RSS at the end {rss_end:,.0f} MB.")


if __name__ == "__main__":
    main()
