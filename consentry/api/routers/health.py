"""Probes and figures for whoever runs the service: ``GET /readyz`` (may this replica take
traffic?) and ``GET /metrics`` (Prometheus). ``/healthz`` (the process answers) is in the
app itself. docs/operations.md says how they are used."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from consentry.access import Scope
from consentry.api.auth import require
from consentry.errors import ConfigurationError
from consentry.gate import Gate
from consentry.http.errors import AUTH, responses
from consentry.metrics import CONTENT_TYPE, Backlog, IndexState, exposition

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

# A probe answers within this even when the database hangs; a result is reused this long
# so that many probes cost one round of checks.
PROBE_WAIT_S = 3.0
PROBE_TTL_S = 2.0


class ReadinessOut(BaseModel):
    status: Literal["ready", "not_ready"]
    reasons: list[str] = Field(
        description="why not, as codes only (database_unreachable, schema_behind_code, "
                    "index_not_loaded, evidence_keys_wrong, probe_timed_out); details are "
                    "in the server log, never here")


class ReadinessProbe:
    """Whether this replica can do its work: the database answers and has every migration
    this code needs (a newer release's may be there too), the match indexes are open and
    caught up, and the configured evidence keys still open the vault's canaries. One
    round at a time."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self._lock = threading.Lock()
        self._last: tuple[float, tuple[str, ...]] | None = None

    def reasons(self) -> tuple[str, ...]:
        if not self._lock.acquire(timeout=PROBE_WAIT_S):
            return ("probe_timed_out",)  # the round before is stuck (the database hangs)
        try:
            last = self._last
            if last is not None and time.monotonic() - last[0] < PROBE_TTL_S:
                return last[1]
            found = tuple(self._round())
            self._last = (time.monotonic(), found)
            return found
        finally:
            self._lock.release()

    def _round(self) -> Iterator[str]:
        try:
            # Behind: the migration job has not run. Ahead is fine: a newer release's
            # expand migration, which this code keeps working with during a rollout.
            if self.gate.db.schema_state() == "behind":
                yield "schema_behind_code"
                return
            self.gate.db.can_read()  # the hot-path pool too: it may go another way
        except Exception:
            log.warning("readiness: the database cannot be read", exc_info=True)
            yield "database_unreachable"
            return
        try:
            banks = self.gate.banks
            banks.matcher.sync()
            banks.content.sync()
        except Exception:
            log.warning("readiness: the match indexes cannot be brought up to date",
                        exc_info=True)
            yield "index_not_loaded"
        try:
            self.gate.vault.keys_still_open()
        except ConfigurationError as exc:
            log.error("readiness: %s", exc)
            yield "evidence_keys_wrong"
        except Exception:
            log.warning("readiness: the evidence keys cannot be checked", exc_info=True)
            yield "database_unreachable"


def _probe(request: Request) -> ReadinessProbe:
    state = request.app.state
    if getattr(state, "readiness", None) is None:
        state.readiness = ReadinessProbe(state.gate)
    probe: ReadinessProbe = state.readiness
    return probe


def _backlog(request: Request) -> Backlog:
    state = request.app.state
    if getattr(state, "backlog", None) is None:
        gate: Gate = state.gate

        def indexes() -> Iterator[IndexState]:
            banks = gate.banks
            yield IndexState("bank", banks.matcher.size, banks.matcher.watermark)
            yield IndexState("content", banks.content.size, banks.content.watermark)

        state.backlog = Backlog(gate.db, indexes)
    backlog: Backlog = state.backlog
    return backlog


@router.get("/readyz", response_model=ReadinessOut, summary="Readiness: may this replica "
            "take traffic?", responses={503: {"model": ReadinessOut,
                                               "description": "not ready; reasons say why"}})
async def ready(request: Request) -> JSONResponse:
    probe = _probe(request)
    try:
        reasons = await asyncio.wait_for(run_in_threadpool(probe.reasons),
                                         timeout=PROBE_WAIT_S + 1)
    except TimeoutError:
        reasons = ("probe_timed_out",)
    body = ReadinessOut(status="not_ready" if reasons else "ready", reasons=list(reasons))
    return JSONResponse(body.model_dump(), status_code=503 if reasons else 200,
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            dependencies=[Depends(require(Scope.METRICS))],
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"},
                       **responses(*AUTH)})
async def metrics(request: Request) -> Response:
    body = await run_in_threadpool(exposition, _backlog(request))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
