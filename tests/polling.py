"""Waiting for what another thread (the app's job worker, a writer) does in its own time:
a test polls for the state it needs rather than sleeping a guess, which fails on a slow
machine and wastes time on a fast one."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float = 5.0,
               what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
