"""The CLI contract from DESIGN.md, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
            "CONSENTRY_DATABASE_URL": ""}


def consentry(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consentry", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def photo_files(tmp_path: Path, photos) -> dict[str, Path]:
    paths = {}
    for name in ("astronaut", "coffee"):
        paths[name] = tmp_path / f"{name}.jpg"
        paths[name].write_bytes(photos[name])
    return paths


def test_check_generation_json(env, photo_files):
    r = consentry(env, "check", "generation", "--prompt", "put her in a bikini",
                  "--image", str(photo_files["astronaut"]), "--account", "cli-1", "--json")
    assert r.returncode == 0, r.stderr
    verdict = json.loads(r.stdout)
    assert (verdict["decision"], verdict["policy"]["clause"]) == ("block", "II-1")
    assert verdict["account"]["active_strikes"] == 1
    assert (Path(env["CONSENTRY_DATA_DIR"]) / "consentry.db").exists()


def test_bad_input_exits_2_with_a_message(env, tmp_path):
    empty = consentry(env, "check", "generation", "--prompt", "", "--json")
    assert empty.returncode == 2 and "prompt is empty" in empty.stderr
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not really a jpeg")
    bad = consentry(env, "check", "generation", "--prompt", "hat", "--image", str(junk))
    assert bad.returncode == 2 and "image 0" in bad.stderr
    missing = consentry(env, "check", "generation", "--prompt", "hat", "--image",
                        str(tmp_path / "nope.png"))
    assert missing.returncode == 2


def test_batch_writes_one_line_per_input_line_and_survives_bad_lines(env, tmp_path,
                                                                      photo_files):
    lines = [
        {"id": "a", "prompt": "put her in a bikini", "images": [str(photo_files["astronaut"])],
         "account": "b1"},
        "this is not json",
        {"id": "c", "prompt": "", "images": []},
        {"id": "d", "prompt": "remove the spoon", "images": [str(photo_files["coffee"])]},
        {"id": "e", "prompt": "a cat", "images": [str(tmp_path / "missing.png")]},
        {"id": "f", "prompt": "naked kid", "images": []},
    ]
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines))
    r = consentry(env, "check", "generation", "--batch", str(batch))
    assert r.returncode == 0, r.stderr
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(out) == 6
    assert [o.get("id") for o in out] == ["a", None, "c", "d", "e", "f"]
    assert out[0]["decision"] == "block" and out[0]["event_id"].startswith("chk_")
    assert out[1]["error"]["code"] == "invalid_json"
    assert out[2]["error"]["code"] == "empty_prompt"
    assert out[3]["decision"] == "allow"
    assert out[4]["error"]["code"] == "unreadable_image"
    assert (out[5]["decision"], out[5]["policy"]["clause"]) == ("block", "CS-1")


def test_thread_on_the_command_line_and_in_batch_lines(env, tmp_path, photo_files):
    photo = str(photo_files["astronaut"])
    first = consentry(env, "check", "generation", "--prompt", "take off her jacket",
                      "--image", photo, "--thread", "x-1", "--json")
    assert json.loads(first.stdout)["decision"] == "allow", first.stderr
    lines = [{"id": "a", "prompt": "and the shirt too", "images": [photo], "thread": "x-1"},
             {"id": "b", "prompt": "and the shirt too", "images": [photo]},
             {"id": "c", "prompt": "more", "images": [photo], "thread": 7}]
    batch = tmp_path / "threads.jsonl"
    batch.write_text("\n".join(json.dumps(x) for x in lines))
    r = consentry(env, "check", "generation", "--batch", str(batch))
    out = [json.loads(line) for line in r.stdout.splitlines()]
    assert (out[0]["decision"], out[0]["policy"]["clause"]) == ("block", "II-1")
    assert json.loads(first.stdout)["id"] in out[0]["reasons"][0]["checks"]
    assert out[1]["decision"] == "allow"  # the same words with no thread: judged alone
    assert out[2]["error"]["code"] == "invalid_thread"
