"""The hash and bank commands, run as an operator runs them (real subprocesses, the
database from CONSENTRY_DATA_DIR). Commands that do not depend on each other run
concurrently: each process pays ~2 s of imports."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from consentry.banks.content import ContentIndex
from consentry.banks.registry import BankRegistry
from consentry.banks.services import entry_hashes
from consentry.signals.hashing import fingerprint, image_hashes
from consentry.store import Database


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
            "CONSENTRY_DATABASE_URL": ""}


@pytest.fixture
def db(env) -> Database:
    """The database the commands use, migrated here first so concurrent commands find it
    ready."""
    Path(env["CONSENTRY_DATA_DIR"]).mkdir()
    database = Database(f"sqlite:///{Path(env['CONSENTRY_DATA_DIR']) / 'consentry.db'}")
    database.migrate()
    yield database
    database.dispose()


def consentry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_all(env, list(args))[0]


def run_all(env: dict[str, str], *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run commands concurrently; results in the order given."""
    procs = [(cmd, subprocess.Popen([sys.executable, "-m", "consentry", *cmd], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for cmd in commands]
    results = []
    for cmd, proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return results


def lines(r: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.fixture
def files(tmp_path: Path, photos) -> dict[str, Path]:
    paths = {}
    for name in ("astronaut", "coffee", "flower"):
        paths[name] = tmp_path / f"{name}.jpg"
        paths[name].write_bytes(photos[name])
    rotated = io.BytesIO()
    Image.open(io.BytesIO(photos["astronaut"])).rotate(90, expand=True).save(rotated, "JPEG")
    paths["rotated"] = tmp_path / "rotated.jpg"
    paths["rotated"].write_bytes(rotated.getvalue())
    paths["junk"] = tmp_path / "junk.jpg"
    paths["junk"].write_bytes(b"not an image")
    return paths


def test_hash_lines_and_exit_codes(env, files, photos):
    some, none = run_all(
        env, ["hash", str(files["astronaut"]), str(files["junk"]), "--json"],
        ["hash", str(files["junk"]), str(files["junk"].with_name("missing.jpg")), "--json"])
    assert some.returncode == 0, some.stderr
    good, bad = lines(some)
    expected = image_hashes(photos["astronaut"])
    assert good == {"image": str(files["astronaut"]), "pdq": expected.pdq.hex,
                    "quality": expected.pdq_quality, "md5": expected.md5,
                    "sha256": expected.sha256}
    assert bad["image"] == str(files["junk"]) and bad["error"]["code"] == "invalid_image"
    assert none.returncode == 2  # every image failed
    assert [x["error"]["code"] for x in lines(none)] == ["invalid_image", "unreadable_image"]


def test_bank_add_match_sweep_disable(env, db, files, photos):
    # Content the platform registered (through its upload checks) before the takedown.
    content = ContentIndex(db)
    content.register("post-1", "upload", entry_hashes(fingerprint(photos["astronaut"])))
    content.register("post-2", "upload", entry_hashes(fingerprint(photos["flower"])))

    created = consentry(env, "bank", "create", "victims", "--kind", "block",
                        "--category", "ncii", "--description", "takedown requests")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["clause"] == "II-3"

    added = consentry(env, "bank", "add", "victims", str(files["astronaut"]),
                      str(files["junk"]), str(files["astronaut"]), str(files["coffee"]),
                      "--json")
    assert added.returncode == 0, added.stderr
    first, junk, again, coffee_entry = lines(added)
    assert set(first) == {"image", "entry", "pdq", "quality", "md5"}
    assert first["quality"] >= 50 and len(first["pdq"]) == 64 and len(first["md5"]) == 32
    assert junk["error"]["code"] == "invalid_image"
    assert again["error"]["code"] == "duplicate_entry"
    assert again["error"]["entry"] == first["entry"]

    matched, swept, one = run_all(
        env, ["match", str(files["rotated"]), str(files["flower"]), str(files["junk"]),
              "--json"],
        ["sweep", "--bank", "victims", "--json"],
        ["sweep", "--entry", str(coffee_entry["entry"]), "--json"])
    assert matched.returncode == 0, matched.stderr
    rotated, flower, junk = lines(matched)
    assert rotated["image"] == str(files["rotated"])
    assert [(m["bank"], m["entry"], m["signal"]) for m in rotated["matches"]] == \
        [("victims", first["entry"], "pdq")]
    assert rotated["matches"][0]["distance"] <= 31
    assert flower == {"image": str(files["flower"]), "matches": []}
    assert "error" in junk
    assert swept.returncode == 0, swept.stderr
    assert lines(swept) == [{"entry": first["entry"], "content_id": "post-1", "distance": 0}]
    assert one.returncode == 0 and one.stdout == ""  # nobody uploaded the coffee

    disabled = consentry(env, "bank", "disable", "victims")
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["enabled"] is False
    listed = consentry(env, "bank", "list", "--json")
    assert [(b["name"], b["active_entries"], b["enabled"]) for b in lines(listed)] == \
        [("victims", 2, False)]


def test_import_from_a_csv_and_failures_keep_a_clean_message(env, db, tmp_path):
    registry = BankRegistry(db)
    registry.create("hma", "block", "other")
    registry.create("hma2", "block", "other")
    good = tmp_path / "good.csv"
    good.write_text("signal_type,signal_str\n"
                    f"pdq,{'a' * 64}\nvideo_md5,{'b' * 32}\nurl,https://example.com\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"signal_type,signal_str\npdq,{'c' * 64}\nmd5,zz\n")
    no_keys = {k: v for k, v in env.items() if not k.startswith("CONSENTRY_STOPNCII")}
    ok, broken, stopncii = run_all(
        no_keys, ["bank", "import", "hma", "--from", "csv", "--file", str(good)],
        ["bank", "import", "hma2", "--from", "csv", "--file", str(bad)],
        ["bank", "import", "hma2", "--from", "stopncii"])
    assert ok.returncode == 0, ok.stderr
    counts = json.loads(ok.stdout)
    assert (counts["added"], counts["skipped"], counts["batches"]) == (2, 1, 1)
    assert registry.get("hma").active_entries == 2

    assert broken.returncode == 1
    assert "bad.csv line 3" in broken.stderr and "Traceback" not in broken.stderr
    assert json.loads(broken.stdout)["error"]["code"] == "data"
    assert registry.get("hma2").active_entries == 0
    assert stopncii.returncode == 1
    assert "CONSENTRY_STOPNCII_SUBSCRIPTION_KEY" in stopncii.stderr


def test_bad_input_exits_2_with_a_message(env, files):
    unknown, bad_name, no_target = run_all(
        env, ["bank", "add", "nope", str(files["coffee"])],
        ["bank", "create", "Bad Name", "--kind", "block", "--category", "ncii"],
        ["sweep", "--json"])
    assert unknown.returncode == 2 and "no bank named 'nope'" in unknown.stderr
    assert bad_name.returncode == 2 and "bank name 'Bad Name'" in bad_name.stderr
    assert no_target.returncode == 2 and "--bank" in no_target.stderr
