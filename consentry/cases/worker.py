"""The cases' background worker: finishes intake a crashed process left, makes the
removal callbacks that are due, and now and then forgets expired rate-limit counts and
sessions.
A server runs it on a thread; ``consentry worker`` runs it on its own (cron-free
deployments, or more workers than servers)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from consentry.cases.takedowns import TakedownService

_log = logging.getLogger(__name__)
_PRUNE_EVERY_ROUNDS = 720  # hourly at the default pace


class CaseWorker:
    def __init__(self, takedowns: TakedownService, *, every_s: float = 5.0,
                 housekeeping: Sequence[Callable[[], object]] = (),
                 frequent: Sequence[Callable[[], object]] = ()) -> None:
        self.takedowns = takedowns
        self.every_s = every_s
        # Hourly chores of other parts (expired console sessions, ...).
        self.housekeeping = [takedowns.limits.prune, *housekeeping]
        # Chores that must not wait an hour (a confirmed report to NCMEC, statements of
        # reasons due): every round.
        self.frequent = list(frequent)
        self._rounds = 0

    def run_once(self) -> tuple[int, int]:
        """One round: (intake jobs finished, callback attempts made)."""
        resumed = self.takedowns.resume_intake()
        attempts = self.takedowns.removals.dispatch()
        hourly = self._rounds % _PRUNE_EVERY_ROUNDS == 0
        for chore in [*self.frequent, *(self.housekeeping if hourly else ())]:
            try:
                chore()
            except Exception:  # noqa: BLE001 - one failing chore must not starve the others
                _log.exception("worker chore %s failed; it runs again next time",
                               getattr(chore, "__qualname__", chore))
        self._rounds += 1
        return resumed, attempts

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
