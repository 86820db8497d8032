"""``consentry serve --workers N`` as an operator runs it: N processes share the port and
each gets a share of the connections, a process that dies is replaced, one that cannot
start stops the lot, and SIGTERM leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from server_process import ServerProcess, wait_for

pytestmark = pytest.mark.skipif(not hasattr(__import__("socket"), "SO_REUSEPORT"),
                                reason="SO_REUSEPORT is Linux's and the BSDs'")


def children(pid: int) -> set[int]:
    """The server processes under ``pid`` (not multiprocessing's resource tracker)."""
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", "spawn_main"],
                           capture_output=True, text=True)
    return {int(p) for p in found.stdout.split()}


def serving(server: ServerProcess) -> set[int]:
    """The processes holding established connections on the server's port."""
    out = subprocess.run(["ss", "-Htnp", "state", "established",
                          f"( sport = :{server.port} )"], capture_output=True, text=True,
                         check=True).stdout
    return {int(part.split("=")[1].rstrip(",)")) for part in out.replace(",", " ").split()
            if part.startswith("pid=")}


def healthy(server: ServerProcess) -> bool:
    try:
        return httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_processes_share_the_port_and_the_connections(tmp_path: Path):
    server = ServerProcess({"CONSENTRY_DATA_DIR": str(tmp_path / "data")},
                           tmp_path / "server.log")
    server.launch("serve", "--port", str(server.port), "--workers", "2")
    try:
        wait_for(lambda: healthy(server) and len(children(server.pid)) == 2, 120,
                 "two server processes")
        first = children(server.pid)
        clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(16)]
        try:
            for c in clients:  # each a connection of its own, kept open
                assert c.get("/healthz").status_code == 200
            # Both take connections: all 16 on one of two by the kernel's even spread
            # has 1 chance in 32,768.
            assert serving(server) == first
        finally:
            for c in clients:
                c.close()

        died = min(first)
        os.kill(died, signal.SIGKILL)  # a crash or an OOM kill
        wait_for(lambda: len(children(server.pid)) == 2 and died not in children(server.pid)
                 and healthy(server), 120, "a replacement process")
        assert server.proc is not None and server.proc.poll() is None

        replaced = children(server.pid)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        assert not any(Path(f"/proc/{p}").exists() and _running(p) for p in replaced)
    finally:
        server.stop()


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_process_that_cannot_start_stops_the_lot(tmp_path: Path):
    # A database that cannot be opened: each process fails at start. The server exits
    # non-zero instead of starting processes again and again.
    server = ServerProcess({"CONSENTRY_DATA_DIR": str(tmp_path / "data"),
                            "CONSENTRY_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"},
                           tmp_path / "server.log")
    server.launch("serve", "--port", str(server.port), "--workers", "2")
    assert server.proc is not None
    assert server.proc.wait(timeout=120) == 1
    assert "exited before it started" in server.log.read_text()
    assert children(server.pid) == set()


def test_a_port_already_taken_is_a_clear_error(tmp_path: Path):
    first = ServerProcess({"CONSENTRY_DATA_DIR": str(tmp_path / "data")},
                          tmp_path / "first.log").start()
    try:
        second = ServerProcess({"CONSENTRY_DATA_DIR": str(tmp_path / "data")},
                               tmp_path / "second.log")
        second.launch("serve", "--port", str(first.port), "--workers", "2")
        assert second.proc is not None and second.proc.wait(timeout=60) == 1
        assert "cannot listen on" in second.log.read_text()
    finally:
        first.stop()
