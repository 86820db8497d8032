"""The CyberTipline desk without a browser, on SQLite and PostgreSQL: sealed CS-1
evidence is drafted into one report per account, sent only once confirmed, and a report
whose refused prompts are many and long still builds (its additional information is cut
to what the CyberTipline accepts) and reaches the local NCMEC server whole."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ncmec_server import PASSWORD, USERNAME, NcmecServer

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
