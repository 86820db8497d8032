"""``consentry`` run as a user runs it: a child process with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def cli_env(tmp_path: Path) -> dict[str, str]:
    """An embedded (SQLite) installation of its own under ``tmp_path``."""
    return {**os.environ, "CONSENTRY_DATA_DIR": str(tmp_path / "data"),
            "CONSENTRY_DATABASE_URL": "", "CONSENTRY_SECRET_KEY": "k" * 40}


def consentry(env: dict[str, str], *args: str,
              stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "consentry", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=180)
