"""Settings read from the environment, once, at the edge.

Nothing below this module reads ``os.environ``: the gate, store and API receive a
``Settings`` object, so tests and embedders can configure them explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from consentry.signals.sandbox import SandboxLimits

from consentry.banks.exchanges.sources import ExchangeSync, parse_exchange_syncs
from consentry.errors import ConfigurationError

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8000"
MIN_SECRET_KEY_CHARS = 32
JOB_ENGINES = ("embedded", "procrastinate")
WATERMARK_READS = ("decisive", "always")
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _default_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "consentry"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    database_url: str | None = None
    # Connections each process keeps open to a server database (as many again under
    # bursts); size PostgreSQL's max_connections for every replica and worker.
    database_pool: int = 20
    # A server database that stops answering must not stall a replica: a hot-path read
    # (the account, an idempotency replay; on the event loop for text checks) gives up
    # after this many seconds and the request fails closed (503); opening a connection
    # gives up after database_connect_timeout_s (docs/operations.md).
    database_read_timeout_s: float = 2.0
    database_connect_timeout_s: float = 5.0
    # Behind PgBouncer in transaction mode: the same database for those reads, through a
    # pool whose server connections bound statements themselves (docs/operations.md).
    database_read_url: str | None = None
    policy_path: Path | None = None  # None: the packaged default policy
    # SX-1 is configurable: a platform with age-verified adult users may allow explicit
    # content of fictional adults (with a label). Default: block.
    allow_adult_content: bool = False
    analysis_timeout_s: float = 10.0
    # Conversation memory: how long a thread's turns are kept and judged with later
    # requests of the same thread (docs/threads.md).
    thread_ttl_s: float = 86400.0
    # The semantic layer (multilingual sentence encoder + exemplars) on the cascade.
    semantic_layer: bool = True
    # Checks that cost the account nothing are recorded in batches, one transaction for
    # many (consentry.store.batching); each still answered only once durable.
    batch_records: bool = False
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
    # Networks (CIDR) a fetch may reach although they are not public: a trusted internal
    # CDN. Every other non-public address (loopback, private, link-local...) is refused.
    hma_fetch_networks: tuple[str, ...] = ()
    # One deadline for a whole fetch: resolution, connection, headers and body.
    hma_fetch_timeout_s: float = 10.0
    # Takedowns: the platform endpoint that removes one content item ("{content_id}" is
    # replaced), and the shared secret its requests are signed with. Unset: cases are
    # located and banked, and removal waits until a callback is configured.
    removal_callback_url: str | None = None
    removal_callback_secret: str | None = field(default=None, repr=False)
    # Where requesters and uploaders are sent: this service's public address, and the
    # platform's appeal page (the uploaders' route to contest a removal).
    # None: the address ``consentry serve`` listens on.
    public_url: str | None = None
    appeal_url: str | None = None
    # CONSENTRY_SMTP_* as given (see consentry.cases.senders); none: a file outbox.
    smtp: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # How long a process holds a takedown's intake work before another may take it over
    # (it died): the longest a recorded request can wait after a crash.
    job_lease_s: float = 60.0
    # Reveals of unblurred media a reviewer may make in a 12-hour shift; past it, only
    # work without media is offered.
    reveals_per_shift: int = 50
    # Seconds a revealed image stays unblurred in the console before it blurs again.
    reveal_seconds: int = 10
    # Reverse proxies whose X-Forwarded-For is believed (CIDRs). Empty: the peer address
    # is the client, whatever headers say, so rotating a header defeats no limit.
    trusted_proxies: tuple[str, ...] = ()
    # The service's own secret (CONSENTRY_SECRET_KEY): keys derived from it sign appeal
    # tokens and encrypt the console's TOTP secrets. Unset: one is made on first use and kept in
    # data_dir/secret.key (consentry.secret_key); a fleet must set the same value on
    # every replica and command line.
    secret_key: str | None = field(default=None, repr=False)
    # Key-encryption keys of the evidence vault (consentry.evidence.keys): "id:base64,..."
    # with the active key first. Unset: one derived from the secret key.
    evidence_keys: str | None = field(default=None, repr=False)
    # How long sealed evidence is kept (18 USC 2258A as extended: one year), unless held.
    evidence_retention_days: int = 365
    # How long allowed checks are kept in the database (None: for ever). Refused and held
    # checks are evidence and stay; long-term figures come from the analytics engine.
    check_retention_days: int | None = None
    # NCMEC's CyberTipline (consentry.reporting.cybertip_desk): where and as whom reports
    # are sent, and who at the platform NCMEC may contact. Unset: reports are drafted and
    # confirmed, and wait to be sent.
    cybertip_url: str | None = None
    cybertip_username: str | None = None
    cybertip_password: str | None = field(default=None, repr=False)
    cybertip_reporter_email: str | None = None
    # The console's session cookie is sent only over HTTPS when True. None: secure unless
    # the public address is plain http on this machine (a developer's own server).
    cookie_secure: bool | None = None
    # The EU DSA Transparency Database (consentry.reporting.statements): its address and
    # the platform's API token. Unset: statements of reasons are kept, and wait.
    dsa_url: str | None = None
    dsa_token: str | None = field(default=None, repr=False)
    # Where the content index looks for copies (docs/scale-out-index.md): "memory" (each
    # process) or "clickhouse" (CONSENTRY_CLICKHOUSE_URL: chdb:///PATH or http(s)://...).
    content_index: str = "memory"
    clickhouse_url: str | None = field(default=None, repr=False)
    clickhouse_database: str = "consentry"
    # Where background work runs (docs/fleet.md): "embedded", a thread in the API process
    # (one process, SQLite or PostgreSQL); "procrastinate", a job queue in PostgreSQL that
    # ``consentry worker`` processes run, so API replicas run no jobs themselves.
    jobs: str = "embedded"
    # Banks kept in sync with hash lists on a schedule (consentry.banks.exchange_sync):
    # "bank=source,..." with source stopncii, ncmec or csv; their credentials are read
    # from the CONSENTRY_STOPNCII_*, _NCMEC_* and _HMA_CSV_* variables at each sync.
    exchange_syncs: tuple[ExchangeSync, ...] = ()
    # Provenance on outputs (docs/provenance.md): the C2PA signing key and its certificate
    # chain (leaf first), each PEM text or a path to a PEM file; the certificates whose
    # manifests are believed (None: the root of the signing chain); the generator's name
    # as manifests state it. Unset key or chain: marking is refused, never signed with a
    # made-up key.
    provenance_key: str | None = field(default=None, repr=False)
    provenance_certs: str | None = field(default=None, repr=False)
    provenance_trust_anchors: str | None = field(default=None, repr=False)
    provenance_generator: str = "Consentry-gated image generator"
    # When an upload's watermark is read (0.4 s of CPU): "decisive", only where it can
    # change the decision (a face in an intimate image: II-2); "always", for a platform
    # that labels every AI-generated upload.
    read_watermark: str = "decisive"

    def __post_init__(self) -> None:
        if self.content_index not in {"memory", "clickhouse"}:
            raise ConfigurationError("CONSENTRY_CONTENT_INDEX must be memory or clickhouse, "
                                     f"got {self.content_index!r}")
        if self.content_index == "clickhouse" and not self.clickhouse_url:
            raise ConfigurationError("CONSENTRY_CONTENT_INDEX=clickhouse needs "
                                     "CONSENTRY_CLICKHOUSE_URL (chdb:///PATH or http://host:8123)")
        # Checked here so a typo stops the service at start, not at the first request.
        for name, networks, example in (
                ("CONSENTRY_TRUSTED_PROXIES", self.trusted_proxies, "10.0.0.5 or 10.0.0.0/24"),
                ("CONSENTRY_HMA_FETCH_NETWORKS", self.hma_fetch_networks,
                 "10.20.0.0/16, fd00::/8")):
            for network in networks:
                try:
                    ipaddress.ip_network(network)
                except ValueError as exc:
                    raise ConfigurationError(f"{name}: {network!r} is not an address or a "
                                             f"network in CIDR form (e.g. {example}): {exc}"
                                             ) from None
        for name, seconds in (("CONSENTRY_ANALYSIS_TIMEOUT_S", self.analysis_timeout_s),
                              ("CONSENTRY_HMA_FETCH_TIMEOUT_S", self.hma_fetch_timeout_s),
                              ("CONSENTRY_JOB_LEASE_S", self.job_lease_s),
                              ("CONSENTRY_THREAD_TTL_S", self.thread_ttl_s),
                              ("CONSENTRY_DATABASE_READ_TIMEOUT_S",
                               self.database_read_timeout_s)):
            if not 0 < seconds < float("inf"):
                raise ConfigurationError(f"{name} must be a positive number of seconds, got "
                                         f"{seconds!r}")
        if self.jobs not in JOB_ENGINES:
            raise ConfigurationError(f"CONSENTRY_JOBS must be one of {', '.join(JOB_ENGINES)}, "
                                     f"got {self.jobs!r}")
        if not 1 <= self.database_pool <= 1000:
            raise ConfigurationError("CONSENTRY_DATABASE_POOL must be a number of "
                                     f"connections from 1 to 1000, got {self.database_pool!r}")
        if not 2 <= self.database_connect_timeout_s <= 600:
            # libpq counts whole seconds and treats anything under 2 as 2
            raise ConfigurationError("CONSENTRY_DATABASE_CONNECT_TIMEOUT_S must be from 2 to "
                                     f"600 seconds, got {self.database_connect_timeout_s!r}")
        if self.database_read_url is not None and not (
                self.database_read_url.startswith("postgresql")
                and self.resolved_database_url.startswith("postgresql")):
            # Never echo either URL: they may carry passwords.
            raise ConfigurationError("CONSENTRY_DATABASE_READ_URL is a second way to the "
                                     "PostgreSQL database of CONSENTRY_DATABASE_URL (behind a "
                                     "pooler); both must be postgresql:// URLs")
        if self.read_watermark not in WATERMARK_READS:
            raise ConfigurationError("CONSENTRY_READ_WATERMARK must be one of "
                                     f"{', '.join(WATERMARK_READS)}, got {self.read_watermark!r}")
        if self.secret_key is not None and len(self.secret_key) < MIN_SECRET_KEY_CHARS:
            # Never echo the value: it is a secret even when it is a bad one.
            raise ConfigurationError(
                f"CONSENTRY_SECRET_KEY must be at least {MIN_SECRET_KEY_CHARS} characters "
                f"(it has {len(self.secret_key)}); make one with: "
                "python -c 'import secrets; print(secrets.token_urlsafe(48))'")

    @property
    def public_base(self) -> str:
        """This service's public address, for links in messages."""
        return self.public_url or DEFAULT_PUBLIC_URL

    @property
    def secure_cookies(self) -> bool:
        """Whether console cookies carry ``Secure``: as set, else unless this service is
        reached over plain http on loopback (where browsers would drop a secure cookie)."""
        if self.cookie_secure is not None:
            return self.cookie_secure
        url = urlsplit(self.public_base)
        return not (url.scheme == "http" and url.hostname in _LOOPBACK_NAMES)

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
        pool = _optional_int(env, "CONSENTRY_DATABASE_POOL")
        return cls(
            data_dir=data_dir or _default_data_dir(),
            database_url=env.get("CONSENTRY_DATABASE_URL") or None,
            database_pool=20 if pool is None else pool,
            database_read_timeout_s=_number(env, "CONSENTRY_DATABASE_READ_TIMEOUT_S", 2.0),
            database_connect_timeout_s=_number(env, "CONSENTRY_DATABASE_CONNECT_TIMEOUT_S",
                                               5.0),
            database_read_url=env.get("CONSENTRY_DATABASE_READ_URL") or None,
            policy_path=Path(policy) if policy else None,
            allow_adult_content=env.get("CONSENTRY_ALLOW_ADULT_CONTENT", "").lower()
            in {"1", "true", "yes"},
            analysis_timeout_s=_number(env, "CONSENTRY_ANALYSIS_TIMEOUT_S", 10.0),
            thread_ttl_s=_number(env, "CONSENTRY_THREAD_TTL_S", 86400.0),
            semantic_layer=env.get("CONSENTRY_SEMANTIC_LAYER", "1").lower()
            not in {"0", "false", "no", "off"},
            batch_records=env.get("CONSENTRY_BATCH_RECORDS", "").lower()
            in {"1", "true", "yes", "on"},
            decode_workers=_optional_int(env, "CONSENTRY_DECODE_WORKERS"),
            decode_memory_mb=1536 if memory_mb is None else memory_mb,
            decode_queue=_optional_int(env, "CONSENTRY_DECODE_QUEUE"),
            hma_fetch_hosts=tuple(h.lower() for h in
                                  _list(env.get("CONSENTRY_HMA_FETCH_HOSTS", ""))),
            hma_fetch_networks=_list(env.get("CONSENTRY_HMA_FETCH_NETWORKS", "")),
            hma_fetch_timeout_s=_number(env, "CONSENTRY_HMA_FETCH_TIMEOUT_S", 10.0),
            removal_callback_url=env.get("CONSENTRY_REMOVAL_CALLBACK_URL") or None,
            removal_callback_secret=env.get("CONSENTRY_REMOVAL_CALLBACK_SECRET") or None,
            public_url=(env.get("CONSENTRY_PUBLIC_URL") or "").rstrip("/") or None,
            appeal_url=env.get("CONSENTRY_APPEAL_URL") or None,
            smtp=tuple(sorted((k, v) for k, v in env.items() if k.startswith("CONSENTRY_SMTP_"))),
            job_lease_s=_number(env, "CONSENTRY_JOB_LEASE_S", 60.0),
            trusted_proxies=_list(env.get("CONSENTRY_TRUSTED_PROXIES", "")),
            secret_key=env.get("CONSENTRY_SECRET_KEY") or None,
            reveals_per_shift=_optional_int(env, "CONSENTRY_REVEALS_PER_SHIFT") or 50,
            reveal_seconds=_optional_int(env, "CONSENTRY_REVEAL_SECONDS") or 10,
            cookie_secure=_optional_bool(env, "CONSENTRY_COOKIE_SECURE"),
            evidence_keys=env.get("CONSENTRY_EVIDENCE_KEYS") or None,
            cybertip_url=env.get("CONSENTRY_CYBERTIP_URL") or None,
            cybertip_username=env.get("CONSENTRY_CYBERTIP_USERNAME") or None,
            cybertip_password=env.get("CONSENTRY_CYBERTIP_PASSWORD") or None,
            cybertip_reporter_email=env.get("CONSENTRY_CYBERTIP_REPORTER_EMAIL") or None,
            evidence_retention_days=_optional_int(env, "CONSENTRY_EVIDENCE_RETENTION_DAYS")
            or 365,
            check_retention_days=_optional_int(env, "CONSENTRY_CHECK_RETENTION_DAYS"),
            dsa_url=(env.get("CONSENTRY_DSA_URL") or "").rstrip("/") or None,
            dsa_token=env.get("CONSENTRY_DSA_TOKEN") or None,
            content_index=(env.get("CONSENTRY_CONTENT_INDEX") or "memory").strip().lower(),
            clickhouse_url=env.get("CONSENTRY_CLICKHOUSE_URL") or None,
            clickhouse_database=env.get("CONSENTRY_CLICKHOUSE_DATABASE") or "consentry",
            jobs=(env.get("CONSENTRY_JOBS") or "embedded").strip().lower(),
            exchange_syncs=parse_exchange_syncs(env.get("CONSENTRY_EXCHANGE_SYNCS") or ""),
            provenance_key=env.get("CONSENTRY_PROVENANCE_KEY") or None,
            provenance_certs=env.get("CONSENTRY_PROVENANCE_CERTS") or None,
            provenance_trust_anchors=env.get("CONSENTRY_PROVENANCE_TRUST_ANCHORS") or None,
            provenance_generator=(env.get("CONSENTRY_PROVENANCE_GENERATOR") or "").strip()
            or "Consentry-gated image generator",
            read_watermark=(env.get("CONSENTRY_READ_WATERMARK") or "decisive").strip().lower(),
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}"
                                 ) from None


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from exc
    if number < 0:
        raise ConfigurationError(f"{name} must not be negative, got {number}")
    return number


def _optional_bool(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if not value:
        return None
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(f"{name} must be true or false (1/0), got {value!r}")
