"""``consentry user``: the console's people managed from the command line (real
subprocesses over the embedded database; the password prompt through typer's runner)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from consentry import cli
from consentry.config import Settings
from consentry.people import People, totp
from consentry.store import Database

PASSWORD = "plum orchard lantern"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    return {**os.environ, "CONSENTRY_DATA_DIR": str(data), "CONSENTRY_DATABASE_URL": "",
            "CONSENTRY_SECRET_KEY": ""}


def user(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consentry", "user", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


def _people(env) -> People:
    settings = Settings(data_dir=Path(env["CONSENTRY_DATA_DIR"]))
    db = Database(settings.resolved_database_url)
    return People.open(db, settings)


def test_the_first_admin_and_a_team_are_made_and_changed(env):
    made = user(env, "create", "Root", "--role", "admin", "--display-name", "Ops Root",
                "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    root = json.loads(made.stdout)
    assert (root["username"], root["display_name"], root["roles"]) == (
        "root", "Ops Root", ["admin"])
    assert PASSWORD not in made.stdout + made.stderr
    assert user(env, "create", "morgan", "--role", "moderator", "--role", "child_safety",
                "--password-stdin", stdin=PASSWORD).returncode == 0

    changed = user(env, "roles", "morgan", "--role", "lead")
    assert json.loads(changed.stdout)["roles"] == ["lead"]
    assert json.loads(user(env, "disable", "morgan").stdout)["enabled"] is False
    listed = [json.loads(line) for line in user(env, "list", "--json").stdout.splitlines()]
    assert [(p["username"], p["enabled"]) for p in listed] == [("morgan", False), ("root", True)]
    table = user(env, "list").stdout
    assert "DISABLED" in table and "Ops Root" in table
    assert json.loads(user(env, "enable", "morgan").stdout)["enabled"] is True

    reset = user(env, "reset-password", "morgan", "--password-stdin",
                 stdin="a brand new passphrase\n")
    assert reset.returncode == 0, reset.stderr
    directory = _people(env).directory
    assert directory.authenticate("morgan", "a brand new passphrase", client="cli-test").username \
        == "morgan"


@pytest.mark.parametrize(("args", "stdin", "words"), [
    (("create", "al", "--role", "moderator", "--password-stdin"), PASSWORD,
     "3 to 64 characters"),
    (("create", "alice", "--role", "boss", "--password-stdin"), PASSWORD, "no role 'boss'"),
    (("create", "alice", "--role", "moderator", "--password-stdin"), "short",
     "at least 12 characters"),
    (("create", "alice", "--role", "moderator", "--password-stdin"), "", "no password"),
    (("disable", "nobody"), "", "no person with username 'nobody'"),
    (("roles", "nobody", "--role", "lead"), "", "no person"),
    (("reset-password", "nobody", "--password-stdin"), PASSWORD, "no person"),
    (("totp", "nobody"), "", "no person"),
])
def test_bad_input_is_one_line_and_exit_2(env, args, stdin, words):
    done = user(env, *args, stdin=stdin)
    assert done.returncode == 2
    assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_taken_username_is_refused(env):
    user(env, "create", "alice", "--role", "moderator", "--password-stdin", stdin=PASSWORD)
    again = user(env, "create", "ALICE", "--role", "lead", "--password-stdin", stdin=PASSWORD)
    assert again.returncode == 2 and "taken" in again.stderr


def test_totp_prints_the_uri_once_and_keeps_the_key_private(env, tmp_path):
    user(env, "create", "alice", "--role", "moderator", "--password-stdin", stdin=PASSWORD)
    done = user(env, "totp", "alice")
    assert done.returncode == 0, done.stderr
    uri = done.stdout.strip()
    assert uri.startswith("otpauth://totp/Consentry:alice?secret=")
    key = Path(env["CONSENTRY_DATA_DIR"]) / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # A server over the same data directory reads the same key and accepts the codes.
    people = _people(env)
    secret = uri.split("secret=")[1].split("&")[0]
    alice = people.directory.get("alice")
    assert alice.has_totp
    assert people.directory.verify_code(alice.id, totp.code_at(secret, people.sessions.now()),
                                        client="cli-test").id == alice.id
    assert json.loads(user(env, "totp", "alice", "--off").stdout)["totp"] is False


def test_the_password_is_asked_twice_when_typed(env, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    typed = iter([PASSWORD, PASSWORD, PASSWORD, "something else entirely"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(typed)

    monkeypatch.setattr(cli.getpass, "getpass", fake_getpass)
    runner = CliRunner()
    made = runner.invoke(cli.app, ["user", "create", "alice", "--role", "moderator"])
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["username"] == "alice" and len(prompts) == 2
    differ = runner.invoke(cli.app, ["user", "create", "bob", "--role", "moderator"])
    assert differ.exit_code == 2 and "differ" in differ.output
