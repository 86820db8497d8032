"""Settings read from the environment, once, at the edge.

Nothing below this module reads ``os.environ``: the gate, store and API receive a
``Settings`` object, so tests and embedders can configure them explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from consentry.signals.sandbox import SandboxLimits


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "consentry"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str | None = None
    policy_path: Path | None = None  # None: the packaged default policy
    # SX-1 is configurable: a platform with age-verified adult users may allow explicit
    # content of fictional adults (with a label). Default: block.
    allow_adult_content: bool = False
    analysis_timeout_s: float = 10.0
    # The image decoding sandbox (consentry.signals.sandbox): worker processes (None: one
    # per core), the address space each may map, and how many images may wait for one
    # (None: 4 per worker) before a request is answered 503.
    decode_workers: int | None = None
    decode_memory_mb: int = 1536  # 0: no cap
    decode_queue: int | None = None
    # Save the bank and content match indexes under data_dir, so a restart reads only
    # newer changes.
    persist_index: bool = True
    # Hosts the HMA-compatible endpoints may fetch ``?url=`` from (a host also admits its
    # subdomains). Empty: URL fetching is off, so the server can never be made to reach
    # internal addresses (SSRF).
    hma_fetch_hosts: tuple[str, ...] = ()
    # Takedowns: the platform endpoint that removes one content item ("{content_id}" is
    # replaced), and the shared secret its requests are signed with. Unset: cases are
    # located and banked, and removal waits until a callback is configured.
    removal_callback_url: str | None = None
    removal_callback_secret: str | None = field(default=None, repr=False)
    # Where requesters and uploaders are sent: this service's public address, and the
    # platform's appeal page (the uploaders' route to contest a removal).
    public_url: str = "http://127.0.0.1:8000"
    appeal_url: str | None = None
    # CONSENTRY_SMTP_* as given (see consentry.cases.senders); none: a file outbox.
    smtp: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'consentry.db'}"

    def sandbox_limits(self) -> SandboxLimits:
        """The decoding sandbox's limits; decodes without a deadline of their own get
        ``analysis_timeout_s``."""
        from consentry.signals.sandbox import SandboxLimits

        return SandboxLimits(workers=self.decode_workers or os.cpu_count() or 2,
                             memory_mb=self.decode_memory_mb, queue=self.decode_queue,
                             timeout_s=self.analysis_timeout_s)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        data_dir = Path(env["CONSENTRY_DATA_DIR"]) if env.get("CONSENTRY_DATA_DIR") else None
        policy = env.get("CONSENTRY_POLICY_PATH")
        memory_mb = _optional_int(env, "CONSENTRY_DECODE_MEMORY_MB")
        return cls(
            data_dir=data_dir or _default_data_dir(),
            database_url=env.get("CONSENTRY_DATABASE_URL") or None,
            policy_path=Path(policy) if policy else None,
            allow_adult_content=env.get("CONSENTRY_ALLOW_ADULT_CONTENT", "").lower()
            in {"1", "true", "yes"},
            analysis_timeout_s=float(env.get("CONSENTRY_ANALYSIS_TIMEOUT_S", "10")),
            decode_workers=_optional_int(env, "CONSENTRY_DECODE_WORKERS"),
            decode_memory_mb=1536 if memory_mb is None else memory_mb,
            decode_queue=_optional_int(env, "CONSENTRY_DECODE_QUEUE"),
            hma_fetch_hosts=tuple(h.strip().lower() for h in
                                  env.get("CONSENTRY_HMA_FETCH_HOSTS", "").split(",")
                                  if h.strip()),
            removal_callback_url=env.get("CONSENTRY_REMOVAL_CALLBACK_URL") or None,
            removal_callback_secret=env.get("CONSENTRY_REMOVAL_CALLBACK_SECRET") or None,
            public_url=env.get("CONSENTRY_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/"),
            appeal_url=env.get("CONSENTRY_APPEAL_URL") or None,
            smtp=tuple(sorted((k, v) for k, v in env.items() if k.startswith("CONSENTRY_SMTP_"))),
        )


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from exc
    if number < 0:
        raise ValueError(f"{name} must not be negative, got {number}")
    return number
