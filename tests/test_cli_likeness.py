"""``consentry likeness enrol`` and ``withdraw`` as an operator runs them (real
subprocesses on an embedded installation)."""

from __future__ import annotations

import json
from pathlib import Path

from cli_process import cli_env, consentry
from likeness_photos import enrolment_photos


def test_enrol_prints_the_entry_and_withdraw_erases_it(tmp_path: Path, photos):
    env = cli_env(tmp_path)
    paths = []
    for i, data in enumerate([*enrolment_photos(photos["astronaut"]), photos["coffee"]]):
        paths.append(tmp_path / f"photo{i}.jpg")
        paths[-1].write_bytes(data)

    bad = consentry(env, "likeness", "enrol", "alice", str(paths[0]), str(paths[2]))
    assert bad.returncode == 2 and "photo 1: no clear face" in bad.stderr

    done = consentry(env, "likeness", "enrol", "alice", str(paths[0]), str(paths[1]),
                     "--no-edits")
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)
    assert (entry["account"], entry["status"], entry["photo_count"]) == ("alice", "active", 2)
    assert entry["settings"] == {"never_sexualise": True, "no_edits": True}

    again = consentry(env, "likeness", "enrol", "mallory", str(paths[0]), str(paths[1]))
    assert again.returncode == 3 and "held for review" in again.stderr

    gone = consentry(env, "likeness", "withdraw", "alice")
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["status"] == "withdrawn"
    assert consentry(env, "likeness", "withdraw", "alice").returncode == 2
