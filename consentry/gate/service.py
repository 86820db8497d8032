"""The screening service: validate, analyse, decide, enforce, record.

``Gate.check_generation`` is the one place a generation request is decided. It owns
failing closed: if any analysis fails or overruns, the request is refused (FC-1), never
allowed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consentry import audit
from consentry.banks.content import ContentIdTaken
from consentry.banks.prompt_bank import PromptBank
from consentry.banks.services import BankServices, entry_hashes
from consentry.config import Settings
from consentry.enforcement.appeal_tokens import AppealRef, AppealSubject, AppealTokens
from consentry.enforcement.ledger import (
    ensure_account,
    load_standing,
    read_account,
    record_consequence,
)
from consentry.enforcement.standing import (
    AccountStatus,
    Consequence,
    Standing,
    consequence_of,
    costs_anything,
    standing_after,
)
from consentry.errors import Conflict, InvalidRequest, NotFound, Unavailable
from consentry.evidence import Vault, keyring_for
from consentry.evidence.fields import Column, with_quotes, without_quotes
from consentry.gate.conversation import ThreadJudgement, judge_in_thread
from consentry.gate.judgement import Judgement, judge_generation
from consentry.gate.likeness import LikenessFinding, find_likeness, protect_likeness
from consentry.gate.marking import MarkedImage, mark_image, signing_credentials, trust_anchors
from consentry.gate.verdict import (
    AccountState,
    Appeal,
    EnforcementOutcome,
    PolicyCitation,
    Provenance,
    Verdict,
)
from consentry.likeness.registry import LikenessRegistry
from consentry.metrics import observe_verdict
from consentry.policy import (
    FaceRef,
    KnownMatch,
    Policy,
    Reason,
    ReasonCode,
    Ruling,
    evaluate_media,
    load_policy,
    provenance_can_decide,
)
from consentry.policy.provenance import unverified_reasons
from consentry.policy.routing import route_check
from consentry.secret_key import derive_key, service_secret_key
from consentry.signals.findings import ImageFindings, PromptFindings
from consentry.signals.hashing import Fingerprint
from consentry.signals.image import DecodedImage, ImageAnalyser, ImageRejected
from consentry.signals.manifest import ManifestFindings
from consentry.signals.prompt import analyse_prompt
from consentry.signals.provenance import ProvenanceFindings
from consentry.signals.sandbox import DecodeFailed, Sandbox, SandboxBusy, shared_sandbox
from consentry.signals.semantic import (
    SemanticMatcher,
    default_matcher,
    semantic_encoder_name,
)
from consentry.signals.watermark import WatermarkFinding, detect_mark
from consentry.store import Database
from consentry.store.batching import BatchWriter, Pending, not_recorded_in_time
from consentry.store.models import CheckKey, CheckMedia, CheckRecord
from consentry.store.partitions import new_check_id
from consentry.store.review import open_item
from consentry.store.threads import recent_turns, remember_turn

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_PROMPT_CHARS = 4000
MAX_IMAGES = 4
MAX_ACCOUNT_ID = 200
MAX_IDEMPOTENCY_KEY = 200
MAX_URL_CHARS = 2048
MAX_THREAD_ID = 200
_MODEL_LOAD_WAIT_S = 120.0


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Analysis:
    prompt: PromptFindings
    images: tuple[ImageFindings, ...]
    likeness: LikenessFinding = field(default_factory=LikenessFinding)


@dataclass(frozen=True)
class _MediaAnalysis:
    """What an upload's or an output's analysis found."""

    fingerprint: Fingerprint
    findings: ImageFindings
    matches: list[KnownMatch]
    likeness: LikenessFinding
    provenance: ProvenanceFindings | None  # uploads only


@dataclass(frozen=True)
class _TurnMemory:
    """What a check in a thread leaves for the thread's next requests."""

    thread: str
    prompt: str
    image_sha256: Sequence[str]
    images: Sequence[ImageFindings]
    evasion_of: str | None


class Recording:
    """A decided check on its way to the record. ``verdict()`` returns the verdict once
    it is durable (writing it, or waiting for its batch). A caller that must not block
    a thread on the batch (the API's event loop) first calls ``queue_nowait()``."""

    def __init__(self, finish: Callable[[Pending[Verdict] | None], Verdict],
                 write: Callable[[Session], Verdict] | None = None,
                 batch: BatchWriter | None = None) -> None:
        """``write`` with ``batch``: queued in that batch; without: ``finish`` writes."""
        self._finish = finish
        self._queue = partial(batch.submit, write) if batch and write else None
        self.timeout_s = batch.timeout_s if batch else 0.0  # then 503 (fails closed)
        self._pending: Pending[Verdict] | None = None

    @classmethod
    def answered(cls, verdict: Verdict) -> Recording:
        """Nothing to write: a replay of a recorded check."""
        return cls(lambda _: verdict)

    def queue_nowait(self) -> bool:
        """Queue the write in its batch without waiting for room: True when queued (then
        ``when_recorded`` says when ``verdict()`` will not wait). False when the check is
        not batched (it writes its own transaction, or was answered) or the queue is full:
        ``verdict()`` then does the work, and may wait."""
        if self._pending is None and self._queue is not None:
            self._pending = self._queue(wait_for_room=False)
        return self._pending is not None

    def when_recorded(self, callback: Callable[[], None]) -> None:
        """After ``queue_nowait``: ``callback`` once the batch is committed or failed, at
        once or on the writing thread (``Pending.when_done``)."""
        assert self._pending is not None, "queue_nowait first"
        self._pending.when_done(callback)

    @staticmethod
    def not_in_time() -> Unavailable:
        return not_recorded_in_time()

    def verdict(self) -> Verdict:
        if self._pending is None and self._queue is not None:
            self._pending = self._queue()  # waits for room
        return self._finish(self._pending)


class Gate:
    """Checks requests against the policy and records every decision."""

    def __init__(
        self,
        db: Database,
        *,
        settings: Settings | None = None,
        policy: Policy | None = None,
        analyser: ImageAnalyser | None = None,
        banks: BankServices | None = None,
        clock: Callable[[], datetime] = utc_now,
        sandbox: Sandbox | None = None,
        appeal_tokens: AppealTokens | None = None,
        vault: Vault | None = None,
        semantic: SemanticMatcher | None = None,
        likeness: LikenessRegistry | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self._appeal_tokens = appeal_tokens  # None: signed with the service key, on use
        self.db = db
        audit.install()  # every verdict is a link of the audit chain
        self.policy = policy or load_policy(self.settings.policy_path)
        self._analyser = analyser
        self._models: Future[ImageAnalyser] | None = None  # loading in the background
        self._sandbox = sandbox
        self._lazy_lock = threading.Lock()  # guards lazy creation of models and banks
        self._banks = banks
        self._vault = vault
        self._semantic = semantic
        self._likeness = likeness
        self._prompt_bank: PromptBank | None = None
        self._clock = clock
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="consentry-analysis"
        )
        # Group commit for checks that cost nothing (CONSENTRY_BATCH_RECORDS).
        self._batch = BatchWriter(db) if self.settings.batch_records else None

    # -- public API -----------------------------------------------------------------

    def check_generation(
        self,
        prompt: str,
        images: Sequence[bytes] = (),
        account: str | None = None,
        *,
        idempotency_key: str | None = None,
        thread: str | None = None,
    ) -> Verdict:
        """Decide whether a generation or edit request may run (``begin_generation``),
        and return the verdict once it is recorded."""
        return self.begin_generation(prompt, images, account, idempotency_key=idempotency_key,
                                     thread=thread).verdict()

    @property
    def records_in_batches(self) -> bool:
        return self._batch is not None

    def begin_generation(
        self,
        prompt: str,
        images: Sequence[bytes] = (),
        account: str | None = None,
        *,
        idempotency_key: str | None = None,
        thread: str | None = None,
    ) -> Recording:
        """Decide whether a generation or edit request may run; the verdict is returned
        by the ``Recording`` once durable.

        ``thread``: the platform's id for the conversation or reply chain the request
        belongs to; the request is then judged with the thread's recent turns
        (``consentry.gate.conversation``) and remembered for the next ones.

        Raises ``InvalidRequest`` for input that cannot be checked (empty or overlong
        prompt, too many images, damaged, oversized or unsupported images).
        """
        started = time.perf_counter()
        deadline = started + self.settings.analysis_timeout_s  # models, decoding, analysis
        prompt = _validate_prompt(prompt)
        if len(images) > MAX_IMAGES:
            raise InvalidRequest("too_many_images", f"{len(images)} images sent; at most "
                                 f"{MAX_IMAGES} are accepted per request", field="images")
        account = _validate_token(account, "account", MAX_ACCOUNT_ID)
        key = _validate_token(idempotency_key, "idempotency_key", MAX_IDEMPOTENCY_KEY)
        thread = _validate_token(thread, "thread", MAX_THREAD_ID)
        image_digests = [hashlib.sha256(i).hexdigest() for i in images]
        request = _request_digest("generation", prompt, *image_digests,
                                  *([f"thread:{thread}"] if thread else []))
        if account and key and (
                replayed := self._replay(account, key, request, prompt)) is not None:
            return Recording.answered(replayed)

        known = False  # the account has a row already
        if account:
            on_record = read_account(self.db, account, self._clock())
            standing, known = on_record.standing, on_record.exists
            if standing.suspended:
                # Refused before analysis: a suspended account costs no model time.
                ruling = Ruling("block", "EN-1", (Reason(
                    ReasonCode.ACCOUNT_SUSPENDED,
                    f"the account is {standing.status.value.replace('_', ' ')}",
                    kind=standing.suspension_clause),))
                return self._record("generation", ruling, prompt, images, account, key, started,
                                    standing, request=request, known=known)
        else:
            standing = None

        turn: _TurnMemory | None = None
        likeness = LikenessFinding()
        try:
            analysis = self._analyse(prompt, images, deadline)
            likeness = analysis.likeness.seen_by(account)
            ruling = self._judge(prompt, analysis.images, analysis.prompt,
                                 likeness.consented).ruling
            if thread:
                judged = self._judge_in_thread(thread, prompt, analysis, image_digests,
                                               account, ruling)
                ruling = judged.ruling
                turn = _TurnMemory(thread, prompt, image_digests, analysis.images,
                                   judged.evasion_of)
            ruling = protect_likeness(ruling, likeness, edit=bool(images))
        except (InvalidRequest, SandboxBusy):
            raise  # a bad image (422) or a full decoding queue (503): not a verdict
        except Exception as exc:  # noqa: BLE001 - any analysis failure fails closed
            ruling = _fail_closed(exc)
        return self._record("generation", ruling, prompt, images, account, key, started,
                            standing, request=request, turn=turn, known=known,
                            then=lambda v: likeness.record_attempts(
                                self._likeness, ruling, v.id, account))

    def _judge(self, prompt: str, images: Sequence[ImageFindings],
               findings: PromptFindings | None = None,
               consented: frozenset[FaceRef] = frozenset()) -> Judgement:
        """Lexicons, the semantic layer where the cascade sends the request, policy."""
        semantic = self.semantic
        return judge_generation(prompt, images, self.policy, findings=findings,
                                consented=consented,
                                allow_adult_content=self.settings.allow_adult_content,
                                semantic=semantic,
                                prompt_bank=None if semantic is None
                                else self.prompt_bank.index())

    @property
    def prompt_bank(self) -> PromptBank:
        """Confirmed abusive phrasings (needs the semantic layer's encoder)."""
        if self._prompt_bank is None:
            semantic = self.semantic or default_matcher()
            with self._lazy_lock:
                if self._prompt_bank is None:
                    self._prompt_bank = PromptBank(
                        self.db, semantic.vector, semantic_encoder_name(semantic),
                        clock=self._clock)
        return self._prompt_bank

    @property
    def semantic(self) -> SemanticMatcher | None:
        """The semantic layer (loaded on first use), or None where it is turned off."""
        if not self.settings.semantic_layer:
            return None
        if self._semantic is None:
            with self._lazy_lock:
                if self._semantic is None:
                    self._semantic = default_matcher()
        return self._semantic

    def _judge_in_thread(self, thread: str, prompt: str, analysis: _Analysis,
                         image_digests: Sequence[str], account: str | None,
                         ruling: Ruling) -> ThreadJudgement:
        """The request read with the recent turns of its conversation."""
        fields = self.vault.fields
        with self.db.transaction() as session:
            turns = [replace(t, prompt=fields.open(t.prompt, Column.TURN_PROMPT) or "")
                     for t in recent_turns(session, thread, self._clock())]

        def judge(text: str, imgs: Sequence[ImageFindings]) -> tuple[Ruling, PromptFindings]:
            j = self._judge(text, imgs)
            return j.ruling, j.prompt

        return judge_in_thread(prompt, analysis.images, image_digests, account, ruling,
                               analysis.prompt, turns, judge)

    def check_upload(
        self,
        image: bytes,
        account: str | None = None,
        content_id: str | None = None,
        *,
        url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Verdict:
        """Decide an upload: bank match (known CSAM, victims' hashes, own refusals) and
        image analysis. An upload that is not refused joins the content index under
        ``content_id`` so that later bank entries sweep it."""
        return self._check_media("upload", image, account, content_id, url, idempotency_key,
                                 source=None)

    def check_output(
        self,
        image: bytes,
        generation_id: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Verdict:
        """Decide a generated image before it is shown. ``generation_id`` is the verdict id
        of the generation check that let the request run: it ties the output to the
        account and tells whether it was made from a photo of a real person. A refused
        output is hashed into the own-refusals bank (block once, block everywhere)."""
        source = self._generation(generation_id) if generation_id is not None else None
        account = source.account_id if source else None
        return self._check_media("output", image, account, generation_id, None,
                                 idempotency_key, source=source)

    def mark_output(self, check_id: str, image: bytes) -> MarkedImage:
        """The output of allowed check ``check_id``, watermarked and signed with a C2PA
        manifest (docs/provenance.md). ``image`` must be the very bytes that were checked.
        Unknown check: ``NotFound``; not an allowed output: ``Conflict``; other bytes:
        ``InvalidRequest``; no signing key configured: ``ProvenanceNotConfigured``."""
        check_id = _validate_token(check_id, "check_id", MAX_ACCOUNT_ID) or ""
        if not isinstance(image, bytes | bytearray) or not image:
            raise InvalidRequest("missing_image", "the checked output image is required",
                                 field="image")
        with self.db.transaction() as session:
            record = session.get(CheckRecord, check_id)
        if record is None:
            raise NotFound(f"no check {check_id!r}")
        if record.kind != "output":
            raise Conflict(f"check {check_id} is a {record.kind} check; only outputs are "
                           "marked", code="not_an_output")
        if record.decision != "allow":
            raise Conflict(f"output {check_id} was not allowed ({record.decision}, "
                           f"{record.clause}): it must not be shown, so it is not marked",
                           code="output_not_allowed")
        if hashlib.sha256(image).hexdigest() not in (record.image_sha256 or []):
            # Only the checked bytes: marking is no way round the gate for another image.
            raise InvalidRequest("image_mismatch", f"this image is not the one output "
                                 f"{check_id} checked; send the same bytes", field="image")
        credentials = signing_credentials(self.settings)
        return mark_image(bytes(image), credentials=credentials,
                          generator=self.settings.provenance_generator,
                          verdict_id=check_id, policy_version=record.policy_version)

    @property
    def vault(self) -> Vault:
        """The evidence vault (keys from configuration; checked when first used)."""
        if self._vault is None:
            with self._lazy_lock:
                if self._vault is None:
                    vault = Vault(self.db, keyring_for(self.settings),
                                  retention=timedelta(days=self.settings.evidence_retention_days),
                                  clock=self._clock)
                    vault.check_keys()
                    self._vault = vault
        return self._vault

    @property
    def likeness(self) -> LikenessRegistry:
        """The likeness registry (its index built from the database on first use)."""
        if self._likeness is None:
            vault = self.vault  # takes the lazy lock itself
            with self._lazy_lock:
                if self._likeness is None:
                    self._likeness = LikenessRegistry(
                        self.db, vault, self.sandbox, clock=self._clock,
                        decode_timeout_s=self.settings.analysis_timeout_s)
        return self._likeness

    @property
    def banks(self) -> BankServices:
        if self._banks is None:
            with self._lazy_lock:
                if self._banks is None:
                    persist = self.settings.persist_index
                    data = self.settings.data_dir
                    self._banks = BankServices.open(
                        self.db, index_dir=data / "bank-index" if persist else None,
                        content_index_dir=data / "content-index" if persist else None,
                        settings=self.settings)
        return self._banks

    def account_state(self, account_id: str) -> AccountState:
        account_id = _validate_token(account_id, "account", MAX_ACCOUNT_ID) or ""
        return AccountState.of(read_account(self.db, account_id, self._clock()).standing)

    @property
    def sandbox(self) -> Sandbox:
        """Where this gate's images are decoded: the sandbox it was given, else the
        process-wide one (started on first use with this gate's settings)."""
        return self._sandbox or shared_sandbox(self.settings.sandbox_limits())

    def warm_up(self) -> None:
        """Load every model and start the image decoders now rather than on the first
        request: what a long run (a server, a batch) does first, so that no check's
        deadline pays for a load (the models hold the GIL while they load, which would
        hold up every check of those seconds)."""
        analyse_prompt("warm up")
        if self.semantic is not None:
            self.semantic.match("warm up")
        self.sandbox.warm_up()
        self._image_models(None).warm_up()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._batch is not None:
            self._batch.close()  # what is queued is written first
        if self._banks is not None:
            self._banks.close()
        loading = self._models
        if loading is not None and not loading.done():
            # The models load in native code on their own thread: a process that exits
            # under it is aborted by the C++ runtime ("terminate called without an active
            # exception"), so a command line waits for the load before it exits. The
            # answer was already given; only the exit waits.
            with suppress(Exception):
                loading.exception(timeout=_MODEL_LOAD_WAIT_S)

    @property
    def image_analyser(self) -> ImageAnalyser:
        """The image models, loaded on first use."""
        return self._image_models(None)

    def _image_models(self, deadline: float | None) -> ImageAnalyser:
        """The image models; waiting for them to load counts against ``deadline`` (a
        ``perf_counter`` time), past which ``TimeoutError``. The load goes on in the
        background, so later checks find the models ready."""
        if self._analyser is not None:
            return self._analyser
        try:
            return self._load_models().result(timeout=_left(deadline))
        except FutureTimeout as exc:
            raise TimeoutError("the image models did not load within the time limit") from exc

    def _load_models(self) -> Future[ImageAnalyser]:
        """Start loading the image models (once; again after a failed load)."""
        with self._lazy_lock:
            loading = self._models
            if loading is None or (loading.done() and loading.exception() is not None):
                loading = self._models = Future()
                # A daemon thread: a check past its deadline answers without waiting for
                # the load (close() waits for it before a command line exits).
                threading.Thread(target=self._load, args=(loading,), daemon=True,
                                 name="consentry-models").start()
            return loading

    def _load(self, loading: Future[ImageAnalyser]) -> None:
        try:
            # The weights load on first use, in native calls that hold the GIL: load them
            # here, so that a check never runs into a first-use load it cannot time out.
            analyser = ImageAnalyser(workers=os.cpu_count() or 2)
            analyser.warm_up()
        except BaseException as exc:  # noqa: BLE001 - handed to the checks waiting for it
            loading.set_exception(exc)
        else:
            self._analyser = analyser
            loading.set_result(analyser)

    # -- steps ----------------------------------------------------------------------

    def _analyse(self, prompt: str, images: Sequence[bytes], deadline: float) -> _Analysis:
        if not images:
            return _Analysis(analyse_prompt(prompt), ())
        if self._analyser is None:
            self._load_models()  # loads while the images decode
        sandbox = self.sandbox
        if len(images) == 1:
            decoded = [_decode(sandbox, 0, images[0], deadline)]
        else:
            jobs = [self._pool.submit(_decode, sandbox, i, data, deadline)
                    for i, data in enumerate(images)]
            decoded = [job.result() for job in jobs]  # each is bounded by the deadline
        prompt_findings = analyse_prompt(prompt)
        analyser = self._image_models(deadline)
        futures = [self._pool.submit(analyser.analyse, i, img) for i, img in enumerate(decoded)]
        try:
            found = tuple(f.result(timeout=_left(deadline)) for f in futures)
        except FutureTimeout as exc:
            for f in futures:
                f.cancel()
            raise TimeoutError("image analysis overran its time limit") from exc
        return _Analysis(prompt_findings, found, self._likeness_in(decoded, found))

    def _check_media(
        self,
        kind: str,
        image: bytes,
        account: str | None,
        content_id: str | None,
        url: str | None,
        idempotency_key: str | None,
        *,
        source: CheckRecord | None,
    ) -> Verdict:
        started = time.perf_counter()
        deadline = started + self.settings.analysis_timeout_s  # models, decoding, analysis
        if not isinstance(image, bytes | bytearray):
            raise InvalidRequest("missing_image", "an image is required", field="image")
        image = bytes(image)
        account = _validate_token(account, "account", MAX_ACCOUNT_ID)
        content_id = _validate_token(content_id, "content_id", MAX_ACCOUNT_ID)
        url = _validate_token(url, "url", MAX_URL_CHARS)
        key = _validate_token(idempotency_key, "idempotency_key", MAX_IDEMPOTENCY_KEY)
        request = _request_digest(kind, hashlib.sha256(image).hexdigest(), content_id, url)
        if account and key and (replayed := self._replay(account, key, request)) is not None:
            return replayed
        if content_id:
            self._check_content_id(content_id, image)
        try:
            media = self._analyse_media(image, deadline, provenance=kind == "upload")
            fp, findings, matches = media.fingerprint, media.findings, media.matches
            likeness = media.likeness.seen_by(account)
        except (InvalidRequest, SandboxBusy):
            raise  # a bad image (422) or a full decoding queue (503): not a verdict
        except Exception as exc:  # noqa: BLE001 - any analysis failure fails closed
            return self._record(kind, _fail_closed(exc), None, [image], account, key, started,
                                None, request=request).verdict()
        real_person_source = source is not None and any(
            r.get("code") == ReasonCode.REAL_PERSON_IN_PHOTO for r in source.verdict["reasons"])
        ruling = evaluate_media(matches, findings, self.policy,
                                real_person_source=real_person_source,
                                allow_adult_content=self.settings.allow_adult_content,
                                consented=likeness.consented, provenance=media.provenance)
        ruling = protect_likeness(ruling, likeness, edit=real_person_source)
        # A manifest that cannot be believed is reported as such; it clears nothing.
        ruling = replace(ruling, reasons=(*ruling.reasons,
                                          *unverified_reasons(media.provenance)))
        standing, known = None, False
        if ruling.decision == "allow" and account:
            on_record = read_account(self.db, account, self._clock())
            standing, known = on_record.standing, on_record.exists
            if standing.status is AccountStatus.PERMANENTLY_SUSPENDED:
                ruling = Ruling("block", "EN-1", (Reason(
                    ReasonCode.ACCOUNT_SUSPENDED, "the account is permanently suspended",
                    kind=standing.suspension_clause),))
        # Known child abuse is never shown to anyone: keep its hashes, not its bytes.
        # Its bytes go to the vault only, sealed for the report to NCMEC.
        evidence = [] if ruling.clause == "KM-1" else [image]
        verdict = self._record(kind, ruling, None, evidence, account, key, started, standing,
                               digests=[fp.hashes.sha256 or ""], request=request, sealed=[image],
                               content_id=content_id, image_only=_image_only(matches),
                               provenance=media.provenance, known=known).verdict()
        likeness.record_attempts(self._likeness, ruling, verdict.id, account)
        if ruling.decision == "block" and ruling.clause not in {"FC-1", "EN-1"}:
            if kind == "output" and not matches:
                self.banks.bank_refusal(fp, ruling.clause, check_id=verdict.id)
        elif content_id:
            try:
                self.banks.content.register(content_id, kind, entry_hashes(fp),
                                            account_id=account, url=url)
            except ContentIdTaken as exc:  # a concurrent request took the id first
                raise _content_id_taken(content_id) from exc
        return verdict

    def _analyse_media(
        self, image: bytes, deadline: float, *, provenance: bool = False,
    ) -> _MediaAnalysis:
        if self._analyser is None:
            self._load_models()  # loads while the image decodes
        manifest: ManifestFindings | None = None
        if provenance:  # the manifest is parsed in the same sandbox worker, after the decode
            decoded, fp, manifest = _decoding(lambda: self.sandbox.decode_with_manifest(
                image, trust_anchors(self.settings), timeout_s=_left(deadline)),
                "image", "image", deadline)
        else:
            decoded, fp = _decode_media(self.sandbox, image, deadline)
        # The watermark is read from the decoded pixels, never from the container: beside
        # the analysis when always read, else after it and only where it can decide.
        def read_mark() -> Future[WatermarkFinding]:
            return self._pool.submit(detect_mark, np.asarray(decoded.analysis))

        mark = read_mark() if provenance and self.settings.read_watermark == "always" \
            else None
        analysis = self._pool.submit(self._image_models(deadline).analyse, 0, decoded)
        found = self.banks.matcher.match(fp.hashes.md5, fp.query_array())
        matches = [KnownMatch(m.bank, m.category, m.clause, m.entry_id, m.signal, m.distance)
                   for m in found if m.bank_kind == "block"]
        findings = _within(analysis, deadline, "image analysis")
        found_provenance = None
        if manifest is not None:
            if mark is None and provenance_can_decide(findings, self.policy):
                mark = read_mark()
            found_provenance = ProvenanceFindings(
                manifest, None if mark is None else _within(mark, deadline, "watermark reading"))
        return _MediaAnalysis(fp, findings, matches, self._likeness_in([decoded], (findings,)),
                              found_provenance)

    def _likeness_in(self, decoded: Sequence[DecodedImage],
                     found: Sequence[ImageFindings]) -> LikenessFinding:
        """Enrolled people among the faces found; images without a face never open the
        registry (nor the vault its index is sealed in)."""
        if not any(f.faces for f in found):
            return LikenessFinding()
        return find_likeness(self.likeness, decoded, found)

    def _generation(self, generation_id: str) -> CheckRecord:
        """The generation check an output claims to come from. Unknown: bad input. Refused
        or held: there should be no output at all, so it is not checked or registered."""
        generation_id = _validate_token(generation_id, "generation_id", MAX_ACCOUNT_ID) or ""
        with self.db.transaction() as session:
            record = session.get(CheckRecord, generation_id)
        if record is None or record.kind != "generation":
            raise InvalidRequest("unknown_generation", f"no generation check {generation_id!r}; "
                                 "send the id of the verdict that let the request run",
                                 field="generation_id")
        if record.decision != "allow":
            raise Conflict(f"generation {generation_id} was not allowed ({record.decision}, "
                           f"{record.clause}): its output must not be shown",
                           code="generation_not_allowed")
        return record

    def _check_content_id(self, content_id: str, image: bytes) -> None:
        """A content id names one image: the same id with other bytes is refused before
        any work (a retry with the same bytes is fine)."""
        existing = self.banks.content.get(content_id)
        if existing is not None and existing.md5 != hashlib.md5(image).hexdigest():
            raise _content_id_taken(content_id)

    def _replay(self, account: str, key: str, request: str,
                prompt: str | None = None) -> Verdict | None:
        """The verdict already given for this key, if the request is the same one. A key
        reused for a different request is refused: replaying its answer would let a
        harmless request's ``allow`` stand for an abusive one."""
        with self.db.reading() as conn:
            stored = conn.execute(
                select(CheckRecord.verdict, CheckRecord.request_sha256)
                .join(CheckKey, CheckKey.check_id == CheckRecord.id)
                .where(CheckKey.account_id == account, CheckKey.idempotency_key == key)
            ).first()
        if stored is None:
            return None
        verdict, digest = stored
        if digest != request:
            raise Conflict(f"idempotency key {key!r} was already used for a different "
                           "request; use a new key for a new request",
                           code="idempotency_key_reused")
        return Verdict.model_validate(with_quotes(verdict, prompt))

    def _record(
        self,
        kind: str,
        ruling: Ruling,
        prompt: str | None,
        images: Sequence[bytes],
        account: str | None,
        key: str | None,
        started: float,
        standing: Standing | None,
        *,
        request: str,
        digests: Sequence[str] | None = None,
        content_id: str | None = None,
        image_only: bool = False,
        sealed: Sequence[bytes] | None = None,
        turn: _TurnMemory | None = None,
        provenance: ProvenanceFindings | None = None,
        known: bool = False,
        then: Callable[[Verdict], None] | None = None,
    ) -> Recording:
        """Record the check, apply its consequence and open its review item (when a person
        must look: ``policy.routing``) in one transaction. ``then``: what to do with the
        verdict once it is recorded.

        ``standing`` is the account as read before analysis; it is read again under a
        row lock only when the ruling can cost the account something, so that concurrent
        refusals always count against the latest total. ``known``: that read found the
        account's row, so a check that costs nothing need not create it.
        """
        now = self._clock()
        keep_evidence = ruling.decision != "allow"
        check_id = new_check_id(now, kept=keep_evidence)  # its partition on PostgreSQL
        kept = [hashlib.sha256(b).hexdigest() for b in images]
        digests = list(digests) if digests is not None else kept
        # The vault is made ready (its keys checked) before the transaction opens.
        preserve = keep_evidence and self.policy.clause(ruling.clause).preserve_evidence
        # Also where a prompt or a thread's turn is kept: both are sealed.
        vault = self.vault if keep_evidence or turn is not None else None
        costly = bool(account) and costs_anything(ruling, self.policy)

        def write(session: Session) -> Verdict:
            # May run twice (a batch written again): it changes nothing outside session.
            after, consequence = standing, Consequence()
            if account:
                if costly or not known:  # accounts are never deleted: a known row stays
                    ensure_account(session, account, now, lock=costly)
                if costly or after is None:
                    after = load_standing(session, account, now)
                consequence = consequence_of(ruling, after, self.policy, now)
                if turn is not None and turn.evasion_of and not (
                        consequence.permanent or consequence.pending_review):
                    # A near-identical retry of a refusal: the same attempt, struck once.
                    consequence = Consequence()
                after = standing_after(after, consequence)
            preserved = preserve and vault is not None and self._preserve(
                session, vault, check_id, kind, ruling, prompt,
                images if sealed is None else sealed, account, now)
            verdict = self._verdict(check_id, kind, ruling, consequence, after, now,
                                    preserved=preserved, provenance=provenance)
            session.add(CheckRecord(
                id=check_id, kind=kind, account_id=account, idempotency_key=key,
                created_at=now, decision=ruling.decision, category=verdict.category,
                clause=ruling.clause, policy_version=self.policy.version,
                prompt=vault.fields.seal(_storable(prompt), Column.CHECK_PROMPT)
                if vault is not None and keep_evidence and prompt else None,
                prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest() if prompt else None,
                image_sha256=digests, request_sha256=request, content_id=content_id,
                verdict=without_quotes(verdict.model_dump(mode="json")),
                latency_ms=(time.perf_counter() - started) * 1000,
            ))
            if account and key:  # unique: a concurrent retry fails here, then replays
                session.add(CheckKey(account_id=account, idempotency_key=key,
                                     check_id=check_id, created_at=now))
            if keep_evidence or turn is not None:
                session.flush()  # the media, strike, review and turn rows refer to this row
            if keep_evidence and vault is not None:
                # For the reviewers: the bytes sealed in the vault, a reference here.
                for i, (d, data) in enumerate(zip(kept, images, strict=True)):
                    sealed_id = vault.seal(
                        session, subject_kind="check_media", subject=check_id,
                        content=data, metadata={"check": check_id, "position": i},
                        clause=ruling.clause, account_id=account, position=i,
                        content_sha256=d, actor="gate")
                    session.add(CheckMedia(check_id=check_id, position=i, sha256=d,
                                           evidence_id=sealed_id))
            if account:
                record_consequence(session, account, ruling.clause, consequence, check_id,
                                   now)
            if turn is not None and vault is not None:
                remember_turn(
                    session, thread_id=turn.thread, check_id=check_id, account=account,
                    now=now, ttl=timedelta(seconds=self.settings.thread_ttl_s),
                    prompt=vault.fields.seal(_storable(turn.prompt), Column.TURN_PROMPT),
                    image_sha256=turn.image_sha256,
                    faces=[(f.box, f.age) for img in turn.images for f in img.faces],
                    nsfw=max((img.nsfw for img in turn.images), default=0.0),
                    decision=ruling.decision, clause=ruling.clause,
                    evasion_of=turn.evasion_of)
            routing = route_check(ruling, pending_review=consequence.pending_review,
                                  image_only=image_only,
                                  has_media=keep_evidence and bool(images))
            if routing is not None:
                open_item(session, queue=routing.queue, kind=routing.kind,
                          subject=check_id, account_id=account, clause=ruling.clause,
                          restricted=routing.restricted, has_media=routing.has_media,
                          priority=routing.priority, due_at=now + routing.sla, now=now)
            return verdict

        def finish(batched: Pending[Verdict] | None) -> Verdict:
            try:
                if batched is not None:
                    verdict = batched.wait()
                else:
                    # A strike or a suspension reads the account under a lock: on its own.
                    with self.db.transaction() as session:
                        verdict = write(session)
            except IntegrityError:
                # A concurrent retry with the same idempotency key won the race: answer as
                # it did.
                if account and key and (
                        replayed := self._replay(account, key, request, prompt)) is not None:
                    return replayed
                raise
            observe_verdict(kind, ruling.decision, ruling.clause,
                            time.perf_counter() - started)
            if then is not None:
                then(verdict)
            return verdict

        # Costs the account nothing: recorded with others in one transaction.
        batched = self._batch is not None and not costly
        return Recording(finish, write if batched else None, self._batch if batched else None)

    @property
    def appeal_tokens(self) -> AppealTokens:
        if self._appeal_tokens is None:
            self._appeal_tokens = AppealTokens(
                derive_key(service_secret_key(self.settings), "appeals"))
        return self._appeal_tokens

    def _appeal(self, check_id: str, now: datetime, window: int) -> Appeal:
        token = self.appeal_tokens.issue(AppealRef(AppealSubject.CHECK, check_id))
        return Appeal(window_days=window, until=now + timedelta(days=window), token=token,
                      url=f"{self.settings.public_base}/appeals?token={token}")

    def _preserve(self, session: Session, vault: Vault, check_id: str, kind: str,
                  ruling: Ruling, prompt: str | None, images: Sequence[bytes],
                  account: str | None, now: datetime) -> bool:
        """Seal the evidence of a refusal whose clause says to keep it (CS-1, KM-1: for
        law enforcement and NCMEC) in the check's own transaction."""
        metadata = {"check": check_id, "kind": kind, "account": account,
                    "at": now.isoformat(), "clause": ruling.clause,
                    "policy_version": self.policy.version, "prompt": prompt,
                    "reasons": [r.to_dict() for r in ruling.reasons],
                    "images_sha256": [hashlib.sha256(b).hexdigest() for b in images]}
        items = [(None, None)] if not images else [
            (data, hashlib.sha256(data).hexdigest()) for data in images]
        for position, (data, digest) in enumerate(items):
            vault.seal(session, subject_kind="check", subject=check_id, content=data,
                            metadata=metadata, clause=ruling.clause, account_id=account,
                            position=position, content_sha256=digest, actor="gate")
        return True

    def _verdict(
        self,
        check_id: str,
        kind: str,
        ruling: Ruling,
        consequence: Consequence,
        standing: Standing | None,
        now: datetime,
        *,
        preserved: bool = False,
        provenance: ProvenanceFindings | None = None,
    ) -> Verdict:
        clause = self.policy.clause(ruling.clause)
        restricts = ruling.decision == "block" and ruling.clause not in {"FC-1", "EN-1"}
        window = self.policy.enforcement.appeal_window_days
        return Verdict(
            id=check_id,
            kind=kind,  # type: ignore[arg-type]
            decision=ruling.decision,
            category=clause.category,
            policy=PolicyCitation(clause=ruling.clause, version=self.policy.version,
                                  title=clause.title),
            reasons=[r.to_dict() for r in ruling.reasons],
            explanation=clause.explanation,
            label=ruling.label,
            account=AccountState.of(standing) if standing else None,
            enforcement=EnforcementOutcome(
                strike_weight=consequence.strike_weight,
                suspended_until=consequence.suspend_until,
                permanent_suspension=consequence.permanent,
                pending_review=consequence.pending_review,
                evidence_preserved=preserved,
                law_enforcement_report=ruling.decision == "block"
                and clause.law_enforcement_report,
            ),
            appeal=self._appeal(check_id, now, window) if restricts else None,
            # A restriction's statement of reasons is kept under the check's id
            # (consentry.reporting.statements).
            statement_of_reasons=check_id if restricts else None,
            created_at=now,
            provenance=None if provenance is None
            else Provenance.model_validate(provenance.to_dict()),
        )


def _image_only(matches: Sequence[KnownMatch]) -> bool:
    """A refusal resting on image analysis alone (no known-hash match): a person looks."""
    return not matches


def _fail_closed(exc: BaseException) -> Ruling:
    """FC-1: the request could not be analysed, so it is refused (never allowed)."""
    log.warning("analysis failed, refusing (FC-1): %s", type(exc).__name__)
    return Ruling("block", "FC-1", (Reason(
        ReasonCode.ANALYSIS_UNAVAILABLE, "the safety analysis could not be completed",
        kind=type(exc).__name__),))


def _request_digest(kind: str, *parts: str | None) -> str:
    """What identifies a request for idempotency: its kind and every input."""
    return hashlib.sha256(json.dumps([kind, *parts]).encode()).hexdigest()


def _storable(text: str) -> str:
    """Text as the store can keep it: PostgreSQL refuses NUL characters, and the evidence
    must be recorded whatever the prompt holds (the prompt is analysed as sent)."""
    return text.replace("\x00", "\ufffd")


def _content_id_taken(content_id: str) -> Conflict:
    return Conflict(f"content id {content_id!r} already names a different image; give each "
                    "upload or output its own id", code="content_id_taken",
                    details={"field": "content_id"})


def _validate_prompt(prompt: str) -> str:
    if not isinstance(prompt, str):
        raise InvalidRequest("invalid_prompt", "the prompt must be text", field="prompt")
    if not prompt.strip():
        raise InvalidRequest("empty_prompt", "the prompt is empty", field="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidRequest("prompt_too_long", f"the prompt has {len(prompt)} characters; "
                             f"the limit is {MAX_PROMPT_CHARS}", field="prompt")
    return prompt


def _validate_token(value: str | None, field: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"invalid_{field}", f"{field} must be a non-empty string",
                             field=field)
    if len(value) > limit:
        raise InvalidRequest(f"invalid_{field}", f"{field} is {len(value)} characters; the "
                             f"limit is {limit}", field=field)
    if not value.isprintable():
        raise InvalidRequest(f"invalid_{field}", f"{field} contains control characters",
                             field=field)
    return value


def _left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``perf_counter`` time), never negative; None: none."""
    return None if deadline is None else max(0.0, deadline - time.perf_counter())


def _within(work: Future[_T], deadline: float, what: str) -> _T:
    """The result of ``work`` by ``deadline``; past it, ``TimeoutError`` (fails closed)."""
    try:
        return work.result(timeout=_left(deadline))
    except FutureTimeout as exc:
        work.cancel()
        raise TimeoutError(f"{what} overran its time limit") from exc


def _decode(sandbox: Sandbox, index: int, data: bytes, deadline: float) -> DecodedImage:
    """Decode image ``index`` of a generation request in the sandbox."""
    return _decoding(lambda: sandbox.decode(data, timeout_s=_left(deadline)),
                     f"image {index}", f"images[{index}]", deadline)


def _decode_media(sandbox: Sandbox, data: bytes, deadline: float,
                  ) -> tuple[DecodedImage, Fingerprint]:
    """Decode the image of an upload or output check in the sandbox, once for both the
    analysis and the bank match."""
    return _decoding(lambda: sandbox.decode_and_fingerprint(data, timeout_s=_left(deadline)),
                     "image", "image", deadline)


def _decoding(call: Callable[[], _T], where: str, field: str, deadline: float) -> _T:
    """Decoding errors as the gate answers them. A plainly bad image is an
    ``InvalidRequest`` (422/413). A decode that overran or crashed raises on, to fail
    closed (FC-1); so does a full decoding queue once the deadline has passed, while
    before it the queue's ``SandboxBusy`` raises on (503, try again)."""
    try:
        return call()
    except DecodeFailed:
        raise
    except ImageRejected as exc:
        raise InvalidRequest(exc.code, f"{where}: {exc}", field=field,
                             too_large=exc.too_large) from exc
    except SandboxBusy as exc:
        if not _left(deadline):
            raise TimeoutError("no image decoder came free within the time limit") from exc
        raise
