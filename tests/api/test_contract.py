"""The OpenAPI document is the contract, tested as a hostile client would: Schemathesis
generates requests for every operation from /openapi.json (valid and invalid bodies,
parameters, headers) against a real server (uvicorn on a loopback port, real models, a
real database), and every answer must be documented: no server error, no status the
operation does not declare, no body outside its schema, no undeclared content type.

Bounded so it runs in CI in a few minutes: CONSENTRY_CONTRACT_EXAMPLES examples per
operation (default 40) on each configured database.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis import checks
from server_process import free_port
from sqlalchemy import create_engine, text

from consentry.access import Scope, create_api_key
from consentry.api.app import create_app
from consentry.config import Settings
from consentry.gate import Gate
from consentry.store import Database

POSTGRES_URL = os.environ.get("CONSENTRY_TEST_POSTGRES_URL")
BACKENDS = ["sqlite", "postgres"] if POSTGRES_URL else ["sqlite"]
EXAMPLES = int(os.environ.get("CONSENTRY_CONTRACT_EXAMPLES", "40"))
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance]


class _Served:
    def __init__(self, backend: str, tmp: Path, analyser) -> None:
        self.schema_name = None
        if backend == "postgres":
            assert POSTGRES_URL
            self.schema_name = f"c_{uuid.uuid4().hex[:12]}"
            with create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self.schema_name}"'))
            sep = "&" if "?" in POSTGRES_URL else "?"
            url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{self.schema_name}"
        else:
            url = f"sqlite:///{tmp / 'contract.db'}"
        self.db = Database(url)
        self.db.migrate()
        self.gate = Gate(self.db, settings=Settings(data_dir=tmp, analysis_timeout_s=20),
                         analyser=analyser)
        self.key = create_api_key(self.db, "contract", [Scope.ADMIN])[1]
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(gate=self.gate), port=port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        for _ in range(200):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.gate.close()
        self.db.dispose()
        if self.schema_name:
            with create_engine(POSTGRES_URL).begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self.schema_name}" CASCADE'))


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, tmp_path_factory, analyser) -> Iterator[_Served]:
    served = _Served(request.param, tmp_path_factory.mktemp(request.param), analyser)
    yield served
    served.close()
    # Figures for the record (shown with -s): answers by operation and status.
    print(f"\ncontract run on {request.param}: {sum(STATUSES.values())} requests, "
          f"{sum(c for k, c in STATUSES.items() if k.endswith(' 500'))} server errors")
    for label, count in sorted(STATUSES.items()):
        print(f"{count:6d}  {label}")
    STATUSES.clear()


def _schema() -> schemathesis.BaseSchema:
    """The document the app publishes (built without starting it)."""
    app = create_app(Settings(data_dir=Path("/nonexistent")), gate=None)
    return schemathesis.openapi.from_dict(app.openapi())


schema = _schema()
STATUSES: Counter[str] = Counter()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented(case, served):
    # A valid key on every request (the generated ones are random): the point is what
    # the app does with the request once admitted. Auth is tested route by route.
    response = case.call(base_url=served.url, timeout=60,
                         headers={**(case.headers or {}),
                                  "Authorization": f"Bearer {served.key}"})
    STATUSES[f"{case.operation.label} {response.status_code}"] += 1
    case.validate_response(response, checks=CHECKS)

