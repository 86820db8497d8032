"""The FastAPI application. OpenAPI at /openapi.json is the contract."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from consentry import __version__
from consentry.api.auth import KeyCache
from consentry.api.routers import accounts, banks, check, hma, likeness, media, prompt_bank
from consentry.api.routers import appeals as appeals_api
from consentry.api.routers import health as operations_api
from consentry.api.routers import provenance as provenance_api
from consentry.api.routers import statements as statements_api
from consentry.api.routers import takedowns as takedowns_api
from consentry.audit.checkpoints import signer_for
from consentry.audit.configuration import record_configuration
from consentry.cases.appeals import AppealDesk
from consentry.cases.decisions import Decisions
from consentry.cases.review import ReviewQueues
from consentry.cases.takedowns import TakedownService
from consentry.config import Settings
from consentry.gate import Gate
from consentry.http import errors
from consentry.http.bodies import BodyLimit
from consentry.http.deps import parse_networks
from consentry.http.headers import CONSOLE_HEADERS, PathHeaders
from consentry.jobs import JobDeferrer, case_jobs
from consentry.people import People
from consentry.reporting import statements
from consentry.reporting.cybertip_desk import CyberTipDesk
from consentry.reporting.law_enforcement import LawEnforcementDesk
from consentry.reporting.statements.submitter import submitter_for
from consentry.store import Database
from consentry.web import appeals as appeal_pages
from consentry.web import (
    console_auth,
    console_banks,
    console_law_enforcement,
    console_reports,
    console_review,
    console_transparency,
)
from consentry.web import takedown as takedown_pages
from consentry.web.takedown import STATIC_DIR

# Four 40-megapixel images as base64 fit well inside this; anything larger is refused
# before it is read.
MAX_BODY_BYTES = 256 * 1024 * 1024


def create_app(settings: Settings | None = None, *, gate: Gate | None = None,
               takedowns: TakedownService | None = None,
               people: People | None = None, settle_heap: bool = False) -> FastAPI:
    """Build the app. With no ``gate``, one is made from ``settings`` (migrating the
    database and loading the models at startup); likewise the takedown service, whose
    worker (intake left by a crash, callback retries) then runs on a background thread,
    and the console's people and sessions. Settings default to the given gate's, else to
    the environment. ``settle_heap``: see ``serving_app``."""
    settings = settings or (gate.settings if gate is not None else Settings.from_env())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = gate is None
        if owned:
            db = Database.open(settings)
            db.migrate()
            app.state.gate = Gate(db, settings=settings)
            app.state.gate.warm_up()
        else:
            app.state.gate = gate
        app.state.settings = settings
        app.state.trusted_proxies = parse_networks(settings.trusted_proxies)
        app.state.keys = KeyCache(app.state.gate.db)
        g = app.state.gate
        app.state.takedowns = takedowns or TakedownService.from_settings(
            g.db, g.banks, g.policy, settings, sandbox=g.sandbox, vault=g.vault)
        svc = app.state.takedowns
        app.state.queues = ReviewQueues(g.db, clock=svc.now,
                                        reveals_per_shift=settings.reveals_per_shift,
                                        case_view=lambda n: svc.view(n).to_dict(svc.now()),
                                        vault=g.vault)
        app.state.decisions = Decisions(app.state.queues, svc, g.banks, g.policy,
                                        sender=svc.log.sender, appeal_tokens=g.appeal_tokens,
                                        public_url=settings.public_base, sandbox=g.sandbox,
                                        likeness=g.likeness)
        app.state.appeals = AppealDesk(g.db, g.appeal_tokens, g.policy, clock=svc.now,
                                       fields=g.vault.fields)
        app.state.people = people or People.open(g.db, settings)
        stop = threading.Event()
        record_configuration(g.db, settings, g.policy.version)
        vault = g.vault  # a missing or wrong evidence key fails here, at start
        vault.seal_plaintext()  # what versions before the vault kept in the clear
        signer = signer_for(g.db, settings)
        app.state.cybertip = CyberTipDesk(g.db, vault, settings=settings, clock=svc.now)
        # DSA statements of reasons: kept with every restriction, sent in batches.
        statements.install(g.policy.version)
        dsa = submitter_for(g.db, settings)
        app.state.law_enforcement = LawEnforcementDesk(g.db, vault, signer, clock=svc.now)
        # Background jobs (consentry.jobs.SCHEDULE says which and when). Embedded: on a
        # thread here. On a job engine: `consentry worker` runs them and this replica
        # only asks for removals after a takedown.
        jobs = case_jobs(svc, sessions=app.state.people.sessions, vault=vault, signer=signer,
                         queues=app.state.queues, cybertip=app.state.cybertip, dsa=dsa,
                         settings=settings)
        deferrer = JobDeferrer(settings) if settings.jobs == "procrastinate" else None
        retries = None
        if deferrer is not None:
            svc.dispatch_hook = deferrer.dispatch_soon
        else:
            retries = threading.Thread(target=jobs.embedded().run, args=(stop,),
                                       name="case-worker", daemon=True)
            retries.start()
        if settle_heap:
            # What start-up built (models, lexicons, policy, ORM mappers: about 250,000
            # objects) lives as long as the process. Left to the collector, each full
            # collection walks all of it and holds the GIL for about 0.2 s, which under
            # load was the latency tail (p99). Frozen, a full collection walks only what
            # was made since.
            gc.collect()
            gc.freeze()
        yield
        stop.set()
        if retries is not None:
            retries.join(timeout=10)
        if deferrer is not None:
            deferrer.close()
        if takedowns is None:
            app.state.takedowns.close()
        if owned:
            app.state.gate.close()
            app.state.gate.db.dispose()

    app = FastAPI(title="Consentry", version=__version__, lifespan=lifespan,
                  description="Safety gate against non-consensual intimate imagery and the "
                              "sexualisation of minors in generative-image platforms.")
    app.include_router(operations_api.router)
    app.include_router(check.router)
    app.include_router(accounts.router)
    app.include_router(media.router)
    app.include_router(provenance_api.router)
    app.include_router(banks.router)
    app.include_router(prompt_bank.router)
    app.include_router(likeness.router)
    app.include_router(hma.router)
    app.include_router(takedowns_api.router)
    app.include_router(appeals_api.router)
    app.include_router(statements_api.router)
    app.include_router(takedown_pages.router)
    app.include_router(appeal_pages.router)
    app.include_router(console_auth.router)
    app.include_router(console_banks.router)
    app.include_router(console_review.router)
    app.include_router(console_reports.router)
    app.include_router(console_transparency.router)
    app.include_router(console_law_enforcement.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz", tags=["health"], include_in_schema=True)
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(PathHeaders, prefix="/console", headers=CONSOLE_HEADERS)
    errors.install(app, pages={"/console": console_auth.error_page})
    return app


def serving_app(settings: Settings | None = None) -> FastAPI:
    """The app as ``consentry serve`` runs it, in each server process: built from the
    environment, its heap settled once started (``create_app``'s ``settle_heap``). Tests
    build many apps in one process with ``create_app``, where freezing would keep each."""
    return create_app(settings, settle_heap=True)
