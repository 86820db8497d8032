"""The embedded job runner: one loop that runs the background jobs (``consentry.jobs``)
in rounds, on a thread of the API process (CONSENTRY_JOBS=embedded, the default) or on
its own (``consentry worker`` without a job engine, or ``--once`` from cron). A fleet runs
the same jobs on a job engine instead (docs/fleet.md)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

_log = logging.getLogger(__name__)
_PRUNE_EVERY_ROUNDS = 720  # hourly at the default pace

NamedJob = tuple[str, Callable[[], object]]


class CaseWorker:
    def __init__(self, every_round: Sequence[NamedJob], hourly: Sequence[NamedJob] = (), *,
                 every_s: float = 5.0) -> None:
        # Jobs that must not wait an hour (intake a crash left, removal callbacks due, a
        # confirmed report to NCMEC, statements of reasons due): every round.
        self.every_round = list(every_round)
        # Chores (expired rate-limit counts and sessions, evidence past retention, ...).
        self.hourly = list(hourly)
        self.every_s = every_s
        self._rounds = 0

    def run_once(self) -> dict[str, object]:
        """One round: each due job's result by name (an exception for a job that
        failed; it runs again next time)."""
        hourly = self._rounds % _PRUNE_EVERY_ROUNDS == 0
        results: dict[str, object] = {}
        for name, job in [*self.every_round, *(self.hourly if hourly else ())]:
            try:
                results[name] = job()
            except Exception as exc:  # noqa: BLE001 - one failing job must not starve the others
                _log.exception("background job %s failed; it runs again next time", name)
                results[name] = exc
        self._rounds += 1
        return results

    def run(self, stop: threading.Event) -> None:
        """Rounds until ``stop`` is set: at once (a restart finishes what a crash left),
        then every ``every_s`` seconds."""
        while True:
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad round
                _log.exception("case worker round failed; retrying in %.0f s", self.every_s)
            if stop.wait(self.every_s):
                return
