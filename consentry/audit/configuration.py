"""Configuration changes as links: when a process starts with settings or a policy that
differ from the last recorded ones, a ``config.changed`` link says what they are now.
Secrets (fields the settings hide from ``repr``) and the database address are never
recorded; a digest of the whole view tells one configuration from another."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from sqlalchemy import select

from consentry.audit.chain import canonical, record
from consentry.config import Settings
from consentry.store import Database
from consentry.store.models import AuditRecord

KIND = "config.changed"


def configuration_view(settings: Settings, policy_version: str) -> dict[str, Any]:
    view: dict[str, Any] = {f.name: getattr(settings, f.name)
                            for f in dataclasses.fields(settings)
                            if f.repr and f.name not in ("database_url", "data_dir")}
    view["database"] = settings.resolved_database_url.split(":", 1)[0]
    view["policy_version"] = policy_version
    return json.loads(canonical(view))


def record_configuration(db: Database, settings: Settings, policy_version: str) -> bool:
    """Add a ``config.changed`` link unless the last one describes this configuration;
    whether one was added."""
    view = configuration_view(settings, policy_version)
    digest = hashlib.sha256(canonical(view).encode()).hexdigest()
    with db.transaction() as s:
        last = s.scalar(select(AuditRecord.payload).where(AuditRecord.kind == KIND)
                        .order_by(AuditRecord.seq.desc()).limit(1))
        if last is not None and json.loads(last)["body"].get("sha256") == digest:
            return False
        record(s, KIND, "settings", "system", sha256=digest, settings=view)
    return True
