"""The docs' shell examples, run as a new user would run them: every ``sh`` block of
README.md and docs/*.md, in order, in one bash session per file (variables carry from
block to block), in a directory holding the user's files (photos, a hash-list export),
against a real ``consentry serve`` that shares the CLI's data directory, a platform
removal endpoint on loopback, and loopback NCMEC and StopNCII services.

Each command must exit as documented (0 unless a comment says ``# exit N``), every
``curl`` must be answered 2xx unless a comment shows another status, and where a comment
shows a JSON answer the real one must have every key shown and the same value for each
status-like key. Conventions: tests/doc_examples.py.
"""

from __future__ import annotations

import io
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from doc_examples import Block, Command, answers, blocks, commands, mismatches
from PIL import Image
from platform_content import variants
from removal_platform import SECRET, RemovalPlatform
from server_process import ServerProcess

# The exchanges' loopback fakes live beside their own tests.
sys.path.insert(0, str(Path(__file__).parent / "banks" / "exchanges"))
from fake_ncmec import PASSWORD, USERNAME, FakeNCMEC
from fake_stopncii import FETCH_KEY, SUBSCRIPTION_KEY, FakeStopNCII

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_SKIPPED = 3  # blocks that cannot run here (a server of their own, the whole suite)
COMMAND_TIMEOUT_S = 120.0
SETTLE_S = 10.0  # how long a read-only command may take to show work done after an answer
_CURL_STATUS = re.compile(r"@@docs-test curl (\d{3})@@\n?")
_SERVED = re.compile(r"\b(?:localhost|127\.0\.0\.1):8000\b")
# Commands that change nothing: a curl that sends no body and no method, or a CLI read.
_READ_ONLY = re.compile(r"^\s*(?:\w+=\$\()?\s*(?:"
                        r"curl\b(?!.*\s(?:-d|--data\S*|-F|--form\S*|-X|-T)\s)"
                        r"|consentry (?:takedown (?:status|list)|account|match|sweep)\b)", re.S)

# Every curl reports its status on stderr, so that pipes carry only the body.
_PRELUDE = r"""
set -o pipefail
curl() { command curl -w '%{stderr}@@docs-test curl %{http_code}@@\n' "$@"; }
"""


# -- the user's files -----------------------------------------------------------------


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def user_files(photos: dict[str, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the examples' reader has at hand: their photos and a hash-list export."""
    from skimage import data

    d = tmp_path_factory.mktemp("user-files")
    # A camera-sized photo of a real person: its base64 is far over the 128 KiB a single
    # command-line argument may hold, as an ordinary photo's is.
    astronaut = Image.fromarray(data.astronaut()).resize((1024, 1024), Image.Resampling.LANCZOS)
    (d / "photo.jpg").write_bytes(_jpeg(astronaut, 95))
    assert (d / "photo.jpg").stat().st_size * 4 / 3 > 128 * 1024
    (d / "rotated.jpg").write_bytes(_jpeg(astronaut.rotate(90, expand=True)))
    # An upload, and copies of it as a victim would report them.
    (d / "upload.jpg").write_bytes(photos["hopper"])
    copies = variants(photos["hopper"])
    (d / "reported.jpg").write_bytes(copies["resized"])
    (d / "reported").mkdir()
    (d / "reported" / "screenshot.jpg").write_bytes(copies["reencoded"])
    (d / "reported" / "mirrored.jpg").write_bytes(copies["mirrored"])
    # What an image model made: a scene.
    Image.open(io.BytesIO(photos["coffee"])).save(d / "out.png")
    (d / "requests.jsonl").write_text(
        '{"id": "r1", "prompt": "put her in a winter coat", "images": ["photo.jpg"], '
        '"account": "u123"}\n'
        '{"id": "r2", "prompt": "remove her clothes", "images": ["photo.jpg"], '
        '"account": "u123"}\n')
    rng = np.random.default_rng(7)
    rows = [f"pdq,{bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()},"
            f"example-collab,,nudity" for _ in range(3)]
    (d / "export.csv").write_text("signal_type,signal_str,collab,category,tags\n"
                                  + "\n".join(rows) + "\n")
    return d


# -- running --------------------------------------------------------------------------


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str
    curl_statuses: list[int]


class Shell:
    """One bash session: commands run one at a time, each with its own output files, and
    what one command sets (variables, functions) the next one sees."""

    def __init__(self, cwd: Path, env: dict[str, str], outputs: Path) -> None:
        self.dir = outputs
        self.dir.mkdir()
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.count = 0
        self._send(_PRELUDE)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def run(self, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> Ran:
        self.count += 1
        n, d = self.count, self.dir
        # Commands read nothing from the session's own input (that is the script).
        self._send(f"{{\n{command}\n}} >{d}/{n}.out 2>{d}/{n}.err </dev/null\n"
                   f"echo $? >{d}/{n}.rc\necho @@done {n}@@\n")
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no end after {timeout_s:.0f} s") from None
            if line.strip() == f"@@done {n}@@":
                break
        err = (d / f"{n}.err").read_text(errors="replace")
        return Ran(int((d / f"{n}.rc").read_text()), (d / f"{n}.out").read_text(
            errors="replace"), _CURL_STATUS.sub("", err),
            [int(s) for s in _CURL_STATUS.findall(err)])

    def close(self) -> None:
        self._send("exit\n")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # a command hangs: end it and the session
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def problems(cmd: Command, ran: Ran) -> tuple[list[str], list[str]]:
    """How a command's run differs from what the docs promise: in how it ended (exit
    status, HTTP status), and in what it answered."""
    out: list[str] = []
    if ran.exit_code != cmd.exit_code:
        out.append(f"exit status {ran.exit_code}, documented {cmd.exit_code}")
    if cmd.http_status is not None and not any(ran.curl_statuses):
        out.append(f"shows HTTP {cmd.http_status} but no request was answered")
    # 000: curl got no answer at all, and its exit status says why.
    statuses = [s for s in ran.curl_statuses if s != 0]
    for n, status in enumerate(statuses):
        wanted = cmd.http_status if n == len(statuses) - 1 else None
        if wanted is not None and status != wanted:
            out.append(f"HTTP {status}, documented {wanted}")
        elif wanted is None and not 200 <= status < 300:
            out.append(f"HTTP {status} where the docs show success")
    shown: list[str] = []
    if cmd.answer is not None:
        try:
            got = answers(ran.stdout)
        except ValueError:
            got = None
            shown.append("the answer is not JSON")
        if got == []:
            shown.append("shows an answer but printed nothing")
        for value in got or []:
            shown += mismatches(cmd.answer.value, value)
    return out, shown


@dataclass
class DocRun:
    path: Path
    blocks_run: int = 0
    commands: int = 0
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: list[tuple[float, str]] = field(default_factory=list)  # per command

    def summary(self) -> str:
        slowest = max(self.seconds, default=(0.0, "-"))
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return (f"{name}: {self.blocks_run} blocks run, "
                f"{self.commands} commands, {len(self.skipped)} skipped; "
                f"{sum(s for s, _ in self.seconds):.0f} s, slowest {slowest[0]:.1f} s "
                f"({slowest[1]})"
                + "".join(f"\n    skipped: {why}" for why in self.skipped))


@pytest.fixture
def services() -> Iterator[tuple[RemovalPlatform, FakeNCMEC, FakeStopNCII]]:
    """The platform's removal endpoint and the hash-list services, on loopback."""
    platform, ncmec, stopncii = RemovalPlatform(), FakeNCMEC(), FakeStopNCII()
    rng = np.random.default_rng(11)
    for n in range(3):
        ncmec.put(f"img{n}", 1_700_000_000 + n, fingerprints={
            "md5": bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex(),
            "pdq": bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()})
        stopncii.put(bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex())
    yield platform, ncmec, stopncii
    for service in (platform, ncmec, stopncii):
        service.close()


def _shim(bin_dir: Path) -> None:
    """``consentry`` as the docs call it, running this tree's code."""
    bin_dir.mkdir()
    shim = bin_dir / "consentry"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m consentry "$@"\n')
    shim.chmod(0o755)


def run_doc(path: Path, work: Path, env: dict[str, str]) -> DocRun:
    """Run the ``sh`` blocks of ``path`` in ``work`` (a server too, if they call one) and
    record every command that does not do what the text around it says."""
    result = DocRun(path)
    runnable: list[Block] = []
    for block in blocks(path.read_text()):
        if block.language != "sh":
            continue
        if block.skip is not None:
            result.skipped.append(f"line {block.line}: {block.skip}")
        else:
            runnable.append(block)
    if not runnable:
        return result
    server = None
    if any(_SERVED.search(b.body) for b in runnable):
        server = ServerProcess(env, work.parent / "server.log").start()
    shell = Shell(work, env, work.parent / "outputs")
    port = server.port if server is not None else 8000
    try:
        for block in runnable:
            result.blocks_run += 1
            for cmd in commands(block):
                result.commands += 1
                text = _SERVED.sub(f"127.0.0.1:{port}", cmd.text)
                started = time.monotonic()
                try:
                    ran = shell.run(text)
                except TimeoutError as exc:  # the session is stuck: nothing after can run
                    result.failures.append(f"{cmd.where(path)}: {cmd.text}\n  {exc}")
                    return result
                ended, answered = problems(cmd, ran)
                # A status page may lag the work the server does after answering: a
                # read-only command that ran fine is asked again for a while.
                while (answered and not ended and _READ_ONLY.match(text)
                       and time.monotonic() < started + SETTLE_S):
                    time.sleep(0.5)
                    ran = shell.run(text)
                    ended, answered = problems(cmd, ran)
                result.seconds.append((time.monotonic() - started, cmd.where(path)))
                if found := ended + answered:
                    result.failures.append(
                        f"{cmd.where(path)}: {cmd.text}\n  " + "\n  ".join(found)
                        + f"\n  stdout: {ran.stdout[-600:]!r}\n  stderr: {ran.stderr[-600:]!r}")
    finally:
        shell.close()
        if server is not None:
            server.stop()
    return result


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_examples_run_as_written(doc: Path, user_files: Path, services, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert shutil.which("jq"), "the examples use jq: `make system-deps` installs it"
    platform, ncmec, stopncii = services
    work = tmp_path / "work"
    shutil.copytree(user_files, work)
    _shim(tmp_path / "bin")
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
        "CONSENTRY_REMOVAL_CALLBACK_URL": platform.url,
        "CONSENTRY_REMOVAL_CALLBACK_SECRET": SECRET,
        "CONSENTRY_NCMEC_USERNAME": USERNAME, "CONSENTRY_NCMEC_PASSWORD": PASSWORD,
        "CONSENTRY_NCMEC_ENVIRONMENT": "Industry",
        "CONSENTRY_NCMEC_BASE_URL": ncmec.base_url,
        "CONSENTRY_STOPNCII_SUBSCRIPTION_KEY": SUBSCRIPTION_KEY,
        "CONSENTRY_STOPNCII_FETCH_STATUS_KEY": FETCH_KEY,
        "CONSENTRY_STOPNCII_BASE_URL": stopncii.base_url,
        "COLUMNS": "80",  # a terminal as narrow as a reader's
    }
    result = run_doc(doc, work, env)
    with capsys.disabled():
        print("\n" + result.summary())
    log = tmp_path / "server.log"
    assert not result.failures, (
        f"{len(result.failures)} examples in {doc.name} do not run as written:\n\n"
        + "\n\n".join(result.failures)
        + (f"\n\nserver log:\n{log.read_text()[-3000:]}" if log.exists() else ""))


def test_few_examples_are_skipped_and_each_says_why() -> None:
    skipped = [(doc.name, b.line, b.skip) for doc in DOCS for b in blocks(doc.read_text())
               if b.skip is not None]
    assert all(why for _, _, why in skipped), skipped
    assert len(skipped) <= MAX_SKIPPED, skipped
    # A marker before anything but a shell block would skip nothing: a typo.
    assert all(b.language == "sh" for doc in DOCS for b in blocks(doc.read_text())
               if b.skip is not None)


def test_a_wrong_answer_is_caught() -> None:
    """The checker itself: a shown status that the server does not give fails."""
    block = Block(1, "sh", 'curl -s localhost:8000/v1/takedowns -d \'{\n  "a": 1}\'\n'
                           '# {"case": {"status": "removed", "items_removed": 3}, '
                           '"complete": true}\n', None, None)
    (cmd,) = commands(block)
    assert cmd.text.count("\n") == 1  # the quoted body is part of the command
    real = Ran(0, '{"case": {"status": "located", "items_removed": 0}, "complete": true}',
               "", [201])
    assert problems(cmd, real) == ([], ["answer.case.status: shown 'removed', got 'located'"])
    assert problems(cmd, Ran(0, real.stdout.replace("located", "removed"), "", [422])) == (
        ["HTTP 422 where the docs show success"], [])
