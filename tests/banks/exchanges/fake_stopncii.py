"""A loopback StopNCII.org FetchHashes endpoint speaking the JSON threatexchange parses.

Records are snapshots keyed by (signalType, hashValue); changing one gives it a new
lastModtimestamp. FetchHashes returns records modified at or after startTimestamp, in
pages of pageSize, with an opaque nextPageToken. Like the real service (see
threatexchange's own test data), a page's nextSetTimestamp is not a safe resume point
mid-sync: here it is the largest timestamp of the whole result set.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fake_http import FakeService

SUBSCRIPTION_KEY = "sub-key-4f1c9e"
FETCH_KEY = "fetch-key-b7d02a"


class FakeStopNCII(FakeService):
    def __init__(self) -> None:
        super().__init__()
        self.clock = 1_700_000_000
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.token_generation = 0  # bump to expire every token handed out so far

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def put(
        self,
        hash_value: str,
        status: str = "Active",
        signal_type: str = "ImagePDQ",
        **extra: Any,
    ) -> None:
        """Add or change a record, as a victim's case or its withdrawal would."""
        self.clock += 1
        self.records[signal_type, hash_value] = {
            "lastModtimestamp": self.clock,
            "signalType": signal_type,
            "hashValue": hash_value,
            "hashStatus": status,
            "caseNumbers": {f"case-{hash_value[:6]}": status},
            **extra,
        }

    def handle(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        if path != "/v1/FetchHashes":
            return 404, "application/json", b'{"error": "not found"}'
        if (
            headers.get("ocp-apim-subscription-key") != SUBSCRIPTION_KEY
            or headers.get("x-functions-key") != FETCH_KEY
        ):
            return 401, "application/json", b'{"statusCode": 401, "message": "Access denied"}'
        start = int(query["startTimestamp"])
        size = int(query["pageSize"])
        offset = 0
        if query.get("nextPageToken"):
            token = json.loads(base64.b64decode(query["nextPageToken"]))
            if token["generation"] != self.token_generation:
                return 400, "application/json", b'{"message": "invalid continuation token"}'
            assert token["start"] == start, "token used with another startTimestamp"
            offset = token["offset"]
        matching = sorted(
            (r for r in self.records.values() if r["lastModtimestamp"] >= start),
            key=lambda r: (r["lastModtimestamp"], r["hashValue"]),
        )
        page = matching[offset : offset + size]
        has_more = offset + size < len(matching)
        token = (
            base64.b64encode(
                json.dumps(
                    {"start": start, "offset": offset + size, "generation": self.token_generation}
                ).encode()
            )
            if has_more
            else None
        )
        newest = max((r["lastModtimestamp"] for r in matching), default=start - 1)
        body = {
            "count": len(page),
            "nextSetTimestamp": newest + 1,
            "nextPageToken": token.decode() if token else None,
            "hasMoreRecords": has_more,
            "hashRecords": page,
        }
        return 200, "application/json", json.dumps(body).encode()
