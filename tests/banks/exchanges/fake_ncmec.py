"""A loopback NCMEC hash-sharing API (v2 /entries) speaking the XML threatexchange parses.

The shapes follow NCMEC's documentation as reproduced in threatexchange's test data:
<queryResult> with <images>/<videos> of <image>, <deletedImage>, <video>, <deletedVideo>
and a <paging><next> link carrying from/to/start/size/max. Entries within a window come
by id, not by time, as on the real service.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from fake_http import FakeService

USERNAME = "esp-user"
PASSWORD = "s3cret-pa55"
_PREFIX = "/hashsharing"


def _parse_time(text: str) -> int:
    text = text.replace(".000Z", "Z")
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())


class FakeNCMEC(FakeService):
    def __init__(self, page_size: int = 2) -> None:
        super().__init__()
        self.page_size = page_size
        self.entries: dict[tuple[int, str], dict[str, Any]] = {}
        self.expired_cursors = False
        self.windows: list[tuple[int, int]] = []  # (from, to) of each fresh query

    @property
    def base_url(self) -> str:
        return f"{self.origin}{_PREFIX}"

    def put(
        self,
        entry_id: str,
        timestamp: int,
        *,
        member: int = 42,
        kind: str = "image",
        fingerprints: dict[str, str] | None = None,
        classification: str | None = "A1",
        deleted: bool = False,
        feedback: str = "",
    ) -> None:
        self.entries[member, entry_id] = {
            "id": entry_id,
            "member": member,
            "kind": kind,
            "timestamp": timestamp,
            "fingerprints": fingerprints or {},
            "classification": classification,
            "deleted": deleted,
            "feedback": feedback,
        }

    def handle(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, "text/html", b"<html><body>401 Unauthorized</body></html>"
        if path != f"{_PREFIX}/v2/entries":
            return 404, "application/xml", b"<error>not found</error>"
        start_ts, end_ts = _parse_time(query["from"]), _parse_time(query["to"])
        if "start" in query:
            if self.expired_cursors:
                return 400, "application/xml", b"<error>paging expired</error>"
            start = int(query["start"])
        else:
            start = 1
            self.windows.append((start_ts, end_ts))
        matching = sorted(
            (e for e in self.entries.values() if start_ts <= e["timestamp"] < end_ts),
            key=lambda e: (e["member"], e["id"]),
        )
        page = matching[start - 1 : start - 1 + self.page_size]
        next_link = ""
        if start - 1 + self.page_size < len(matching):
            params = {
                "from": query["from"],
                "to": query["to"],
                "start": start + self.page_size,
                "size": self.page_size,
                "max": len(matching),
            }
            next_link = f"/v2/entries?{urlencode(params)}"
        return 200, "application/xml", _render(page, next_link).encode()


def _render(page: list[dict[str, Any]], next_link: str) -> str:
    groups = []
    for kind in ("image", "video"):
        items = [e for e in page if e["kind"] == kind]
        if not items:
            continue
        newest = max(e["timestamp"] for e in items)
        stamp = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = "".join(_render_entry(e) for e in items)
        groups.append(f'<{kind}s count="{len(items)}" maxTimestamp="{stamp}">{body}</{kind}s>')
    paging = f"<paging><next>{escape(next_link)}</next></paging>" if next_link else ""
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">'
        f"{''.join(groups)}{paging}</queryResult>"
    )


def _render_entry(e: dict[str, Any]) -> str:
    stamp = datetime.fromtimestamp(e["timestamp"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    head = (
        f'<member id="{e["member"]}">Member {e["member"]}</member>'
        f"<timestamp>{stamp}</timestamp><id>{e['id']}</id>"
    )
    tag = e["kind"]
    if e["deleted"]:
        tag = "deleted" + tag.capitalize()
        return f"<{tag}>{head}</{tag}>"
    classification = (
        f"<classification>{e['classification']}</classification>" if e["classification"] else ""
    )
    prints = "".join(f"<{k}>{v}</{k}>" for k, v in e["fingerprints"].items())
    return (
        f"<{tag}>{head}{classification}<fingerprints>{prints}</fingerprints>{e['feedback']}</{tag}>"
    )
