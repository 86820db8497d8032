"""Running the API's server processes: one, or N on one host sharing its port.

With N, each process listens on a socket of its own bound with ``SO_REUSEPORT``, and the
kernel spreads new connections across the sockets evenly. uvicorn's own ``--workers``
shares one listening socket, where whichever process wakes first accepts a whole burst
of connections: in `bench/bench_http.py` one of two processes often held twice the
other's connections and ran flat out while the other idled (docs/recording.md).

The parent only supervises. A process that dies after it started is replaced; one that
fails before it ever answered (a bad setting, the database unreachable at start) stops
the lot, with a non-zero exit, rather than restart in a loop. SIGTERM or SIGINT stops
every process gracefully (uvicorn's shutdown), and kills what is left after a grace.
Where the platform has no ``SO_REUSEPORT`` (not Linux or a BSD), uvicorn's shared
socket is used.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

APP = "consentry.api.app:serving_app"  # each process builds its app from the environment
_GRACE_S = 30.0
_ctx = multiprocessing.get_context("spawn")  # no state, threads or connections inherited


def _options(access_log: bool) -> dict[str, Any]:
    # Forwarded headers are judged by the app against CONSENTRY_TRUSTED_PROXIES, never
    # believed by the server from any local peer.
    return {"proxy_headers": False, "server_header": False, "access_log": access_log}


def serve_processes(host: str, port: int, workers: int, *, access_log: bool) -> int:
    """Run ``workers`` server processes on ``host:port`` until told to stop; the exit
    status (0 when stopped by a signal, 1 when a process could not start)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, factory=True, workers=workers, host=host, port=port,
                    **_options(access_log))
        return 0
    try:
        _check_free(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", host, port, exc.strerror or exc)
        return 1
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children = [_Child.start(host, port, access_log) for _ in range(workers)]
    status = 0
    while not stopping:
        time.sleep(0.2)
        for i, child in enumerate(children):
            if child.process.is_alive():
                continue
            if not child.started():
                log.error("a server process exited before it started (status %s): "
                          "stopping", child.process.exitcode)
                stopping, status = True, 1
                break
            log.warning("a server process died (status %s): replaced",
                        child.process.exitcode)
            children[i] = _Child.start(host, port, access_log)
    _stop_all([c.process for c in children])
    return status


@dataclass
class _Child:
    process: SpawnProcess
    told: Connection  # the process says here once it listens
    ready: bool = False

    @classmethod
    def start(cls, host: str, port: int, access_log: bool) -> _Child:
        told, tell = _ctx.Pipe(duplex=False)
        process = _ctx.Process(target=_run_one, args=(host, port, access_log, tell),
                               name="consentry-server", daemon=False)
        process.start()
        tell.close()
        return cls(process, told)

    def started(self) -> bool:
        try:
            if not self.ready and self.told.poll():
                self.ready = self.told.recv() == "ready"
        except EOFError:  # it exited without saying
            pass
        return self.ready


def _stop_all(processes: list[SpawnProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes what is in flight
    deadline = time.monotonic() + _GRACE_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def _socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                         socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _check_free(host: str, port: int) -> None:
    """A port another server listens on (even one sharing it with SO_REUSEPORT, which a
    second `consentry serve` would silently join) or a bad address fails here, once."""
    with _socket(host) as sock:
        sock.bind((host, port))


def _reusable_socket(host: str, port: int) -> socket.socket:
    sock = _socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, tell: Connection) -> None:
        super().__init__(config)
        self._tell = tell

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:  # the app's start-up (migrations, models) succeeded
            self._tell.send("ready")


def _run_one(host: str, port: int, access_log: bool, tell: Connection) -> None:
    """One server process: its own socket on the shared port, its own app."""
    sock = _reusable_socket(host, port)
    sock.listen(2048)
    server = _Server(uvicorn.Config(APP, factory=True, **_options(access_log)), tell)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(3)  # uvicorn's status for a failed start-up
