"""A victim is told once: a notice answering one receipt of a case leaves at most once,
whether the job that sends it is retried after a crash or run by several workers at once
(two removal callbacks for one item are harmless; two messages to a victim are not)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from platform_content import tida
from sent_notices import sent_notices

from consentry.cases import notices
from consentry.cases.case import CaseStatus
from consentry.cases.intake import ContentLocator, Regime
from consentry.cases.log import CLAIMED
from consentry.cases.senders import Delivery


class CountingSender:
    """Delivers nothing, counts what it was asked to deliver."""

    name = "counting"

    def __init__(self, dies: bool = False) -> None:
        self.sent: list[notices.Notice] = []
        self.dies = dies
        self._lock = threading.Lock()

    def send(self, notice: notices.Notice) -> Delivery:
        if self.dies:  # the process is killed as the message leaves
            raise KeyboardInterrupt("killed mid-send")
        with self._lock:
            self.sent.append(notice)
        return Delivery(True, self.name, "ok")


def _removed_case(takedowns):
    case = takedowns.submit(tida(ContentLocator(
        urls=("https://social.example/p/resized",)))).case
    assert case.status is CaseStatus.REMOVED
    return case


def _removed_notice(number: str) -> notices.Notice:
    return notices.content_removed(number, Regime.TAKE_IT_DOWN, "sam@example.org", 3, 2)


def test_workers_settling_at_once_send_each_notice_once(takedowns, posted):
    case = _removed_case(takedowns)
    counting = CountingSender()
    takedowns.log.sender = counting
    # Eight workers send the same notice for the same receipt, at the same moment.
    start = threading.Barrier(8)

    def send() -> bool:
        start.wait()
        return takedowns.log.send(case.number, _removed_notice(case.number), once="receipt-9")

    with ThreadPoolExecutor(8) as pool:
        sent = list(pool.map(lambda _: send(), range(8)))
    assert sent.count(True) == 1 and len(counting.sent) == 1
    # What the case's settling already sent is not sent again either.
    takedowns.removals.settle(case.number)
    assert takedowns.log.send(case.number, _removed_notice(case.number),
                              once="receipt-1") is False
    assert len(counting.sent) == 1
    assert len(sent_notices(takedowns.db, takedowns.log.vault, "content_removed")) == 2


def test_a_worker_killed_as_it_sends_never_sends_twice(takedowns, posted):
    case = _removed_case(takedowns)
    takedowns.log.sender = CountingSender(dies=True)
    with pytest.raises(KeyboardInterrupt):
        takedowns.log.send(case.number, _removed_notice(case.number), once="receipt-2")
    # The retried job (another worker) finds the claim: the victim may have been told.
    retry = CountingSender()
    takedowns.log.sender = retry
    assert takedowns.log.send(case.number, _removed_notice(case.number),
                              once="receipt-2") is False
    assert retry.sent == []
    left = [n for n in sent_notices(takedowns.db, takedowns.log.vault, "content_removed")
            if not n.delivered]
    assert len(left) == 1  # recorded as claimed, for a person to check
    with takedowns.db.transaction() as s:
        from consentry.store.models import Notification

        assert s.get_one(Notification, left[0].id).detail == CLAIMED


def test_a_notice_without_an_occasion_is_sent_each_time(takedowns, posted):
    case = _removed_case(takedowns)
    counting = CountingSender()
    takedowns.log.sender = counting
    notice = notices.removal_reversed(case.number, Regime.TAKE_IT_DOWN, "sam@example.org",
                                      "a reviewer found the content was not intimate")
    takedowns.log.send(case.number, notice)
    takedowns.log.send(case.number, notice)
    assert len(counting.sent) == 2
