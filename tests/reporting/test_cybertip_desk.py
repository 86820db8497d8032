"""The CyberTipline desk without a browser, on SQLite and PostgreSQL: sealed CS-1
evidence is drafted into one report per account, sent only once confirmed, and a report
whose refused prompts are many and long still builds (its additional information is cut
to what the CyberTipline accepts) and reaches the local NCMEC server whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ncmec_server import PASSWORD, USERNAME, NcmecServer
from postgres_schema import POSTGRES_URL, postgres_schema

from consentry.config import Settings
from consentry.evidence import Vault, parse_keys
from consentry.reporting.cybertip_desk import CyberTipDesk
from consentry.reporting.cybertipline import validate

KEY = "k1:" + "A" * 43 + "="


@pytest.fixture
def ncmec() -> Iterator[NcmecServer]:
    server = NcmecServer()
    yield server
    server.close()


def _desk(db, clock, tmp_path, ncmec: NcmecServer) -> CyberTipDesk:
    vault = Vault(db, parse_keys(KEY), clock=clock)
    vault.check_keys()
    settings = Settings(data_dir=tmp_path, cybertip_url=ncmec.url, cybertip_username=USERNAME,
                        cybertip_password=PASSWORD,
                        cybertip_reporter_email="safety@platform.example")
    return CyberTipDesk(db, vault, settings=settings, clock=clock)


def _confirmed_report(desk: CyberTipDesk, clock, photo: bytes, account: str):
    """One CS-1 refusal sealed for ``account``, drafted and confirmed by a reviewer: how
    many reports were drafted, and the report."""
    with desk.db.transaction() as s:
        desk.vault.seal(s, subject_kind="check", subject="chk_1", content=photo,
                        metadata={"prompt": "a child, undressed", "check": "chk_1",
                                  "at": clock().isoformat()},
                        clause="CS-1", account_id=account, content_sha256="ab" * 32)
    drafted = desk.draft_pending()
    [draft] = desk.reports(status="draft")
    desk.confirm(draft.id, actor="user:3:cara", classification="A1",
                 rationale="a child sexualised, confirmed")
    return drafted, draft


def test_a_report_with_many_long_prompts_is_cut_to_fit_and_sent_once_confirmed(
        db, clock, tmp_path, ncmec, photos):
    desk = _desk(db, clock, tmp_path, ncmec)
    for i in range(12):  # twelve refusals, each prompt 300 characters: 3,600 in all
        prompt = f"attempt {i:02d} " + "sexualised depiction of a schoolchild " * 8
        with db.transaction() as s:
            desk.vault.seal(s, subject_kind="check", subject=f"chk_{i}",
                            content=photos["astronaut"] if i == 0 else None,
                            metadata={"prompt": prompt[:300], "check": f"chk_{i}",
                                      "at": clock().isoformat()},
                            clause="CS-1", account_id="offender-1",
                            content_sha256="ab" * 32 if i == 0 else None)
    assert desk.draft_pending() == 12
    [draft] = desk.reports(status="draft")
    assert desk.send_confirmed() == 0 and not ncmec.reports  # a draft is never sent
    desk.confirm(draft.id, actor="user:3:cara", classification="A1",
                 rationale="prompts sexualise a child, confirmed")
    assert desk.send_confirmed() == 1
    [received] = ncmec.finished_reports()
    validate(received.xml, "report")
    assert b"attempt 00" in received.xml and b"attempt 11" not in received.xml
    assert desk.report(draft.id).status == "sent"


def test_two_senders_at_once_send_a_report_once_and_never_retract_it(
        db, clock, tmp_path, ncmec, photos):
    """The job thread and a second sender (a direct call here; another replica or
    server process on the same database) must not both send: each would take the other's
    upload in progress for a lost one and retract the report at NCMEC."""
    import threading

    from consentry.store import Database

    # A second process's desk: its own connections, its own lock on the SQLite file.
    replica = Database(db.url)
    desks = [_desk(db, clock, tmp_path, ncmec), _desk(replica, clock, tmp_path, ncmec)]
    drafted, draft = _confirmed_report(desks[0], clock, photos["astronaut"], "offender-2")
    assert drafted == 1
    uploading, release = threading.Event(), threading.Event()
    upload = ncmec.upload_hook

    def slow_upload() -> None:  # the first sender is mid-upload while the others try
        uploading.set()
        release.wait(10)

    ncmec.upload_hook = slow_upload
    sent: list[int] = []
    first = threading.Thread(target=lambda: sent.append(desks[0].send_confirmed()))
    first.start()
    try:
        assert uploading.wait(10)
        ncmec.upload_hook = upload
        for desk in desks:  # the same process's other thread, and the other replica
            assert desk.send_confirmed() == 0
    finally:
        release.set()
        first.join(30)
        replica.dispose()
    assert sent == [1]
    assert ncmec.endpoints() == ["submit", "upload", "fileinfo", "finish"]  # no retract
    assert desks[0].report(draft.id).status == "sent"


@pytest.mark.skipif(POSTGRES_URL is None, reason="needs CONSENTRY_TEST_POSTGRES_URL")
def test_a_replica_of_the_release_before_still_keeps_a_new_sender_out(clock, tmp_path, ncmec,
                                                                     photos):
    """During a rolling upgrade old and new replicas send side by side: the new sender
    takes the advisory lock number the release before took (0x43595442), so a send in
    progress on an old replica keeps it out."""
    from sqlalchemy import create_engine, text

    from consentry.store import Database

    with postgres_schema() as url:
        db = Database(url)
        db.migrate()
        old_replica = create_engine(url)
        try:
            desk = _desk(db, clock, tmp_path, ncmec)
            _confirmed_report(desk, clock, photos["astronaut"], "offender-3")
            with old_replica.begin() as held:  # the old release's sender, mid-send
                assert held.scalar(text(f"SELECT pg_try_advisory_xact_lock({0x43595442})"))
                assert desk.send_confirmed() == 0
                assert ncmec.endpoints() == []
            assert desk.send_confirmed() == 1  # the old sender done: the new one sends
        finally:
            old_replica.dispose()
            db.dispose()
