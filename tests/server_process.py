"""The real server in a child process (``consentry serve``), for tests that must see what
a deployment sees: uvicorn's own handling of headers, a ``kill -9`` mid-request, a
restart, the process's memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout_s: float, what: str, *,
             every_s: float = 0.2) -> float:
    """Poll ``condition`` every ``every_s`` until it holds; how long that took (fails
    after ``timeout_s``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class ServerProcess:
    """``consentry serve`` on a free loopback port with the given environment."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self, *args: str) -> None:
        """Start ``consentry ARGS`` with this environment, its output in the log."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "consentry", *args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def start(self, timeout_s: float = 90.0) -> ServerProcess:
        self.launch("serve", "--port", str(self.port))
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log.read_text()[-3000:]}")

    def kill9(self) -> None:
        """What a crash or an OOM kill does: no shutdown, no flush, nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid
