"""Prompt analysis: what a generation prompt asks for, about whom, and in what context.

The engine reads every lexicon in ``lexicon/`` (format: ``lexicon/FORMAT.md``) once per
process and compiles it into a first-word index, so that analysing a prompt costs a few
dictionary look-ups per word. It reports:

- sexual concepts, from lexicon phrases and from compositions the lexicons supply the
  parts for: a removal verb near an inner garment ("take his shirt off", "shirt ...
  disappear"), a reducing word near a garment ("dress way shorter"), a sheer word near a
  garment ("shorts transparent"), an exposing verb near an intimate body part ("uncover
  her chest");
- real-person cues (names, @handles, relations, pronouns, deictics), minor cues (words,
  stated ages, school years, youthful looks) and benign context;
- with spans in the original prompt, the lexicon rule that fired and its language.

Idioms ("nude tone", "the naked truth", "strip of film") remove the sexual finding they
overlap instead of standing beside it; a negation ("no nudity") removes the finding it
negates. Everything is pure Python and deterministic; no network.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from consentry.signals.findings import (
    BenignCue,
    BenignFinding,
    Concept,
    MinorCue,
    MinorFinding,
    PersonCue,
    PersonFinding,
    PromptFindings,
    SexualFinding,
    Span,
)
from consentry.signals.normalise import (
    GAP_COMMA,
    GAP_SPACE,
    GAP_STOP,
    NormalisedText,
    Token,
    Tokens,
    fold_phrase,
    fold_regex,
    normalise,
    tokenise,
)

LEXICON_DIR = Path(__file__).with_name("lexicon")

# --- lexicon schema ------------------------------------------------------------------

CONCEPT_KEYS: dict[str, Concept] = {
    "nudity": Concept.NUDITY,
    "undress": Concept.UNDRESS,
    "revealing": Concept.REVEALING,
    "sheer": Concept.SHEER,
    "sexual_pose": Concept.SEXUAL_POSE,
    "sexual_act": Concept.SEXUAL_ACT,
    "nsfw": Concept.NSFW,
    "suggestive": Concept.SUGGESTIVE,
}
BUILDING_KEYS = (
    "removal_verbs",
    "inner_garments",
    "outer_garments",
    "reduce_words",
    "sheer_words",
    "expose_verbs",
    "body_parts",
    "locatives",
    "negations",
    "image_frames",
    "continuations",
)
MINOR_KEYS: dict[str, MinorCue] = {
    "minor_words": MinorCue.WORD,
    "youthful": MinorCue.YOUTHFUL,
    "school": MinorCue.SCHOOL,
    "age_patterns": MinorCue.AGE,
}
PERSON_KEYS: dict[str, PersonCue] = {
    "relations": PersonCue.RELATION,
    "pronouns": PersonCue.PRONOUN,
    "deictic": PersonCue.DEICTIC,
    "public_figures": PersonCue.NAME,
}
PERSON_HELPER_KEYS = ("titles", "not_people")
BENIGN_KEYS: dict[str, BenignCue] = {
    "object_targets": BenignCue.OBJECT_TARGET,
    "non_sexual_context": BenignCue.NON_SEXUAL_CONTEXT,
    "clothed": BenignCue.CLOTHED,
    "idioms": BenignCue.IDIOM,
}
LIST_KEYS = frozenset(
    [*CONCEPT_KEYS, *BUILDING_KEYS, *MINOR_KEYS, *PERSON_KEYS, *PERSON_HELPER_KEYS,
     *BENIGN_KEYS]
)
META_KEYS = frozenset({"language", "name", "spaced"})

# Concepts a negation right before them cancels ("no nudity", "not sexy"). Revealing
# and undress are left out on purpose: "no bra" and "without her top" reveal.
_NEGATABLE = frozenset(
    {Concept.NUDITY, Concept.NSFW, Concept.SUGGESTIVE, Concept.SEXUAL_ACT,
     Concept.SEXUAL_POSE, Concept.SHEER}
)
# Only sensitive vocabulary is repaired for typos; relation or benign words are not.
_FUZZY_KEYS = frozenset(
    [*CONCEPT_KEYS, "inner_garments", "removal_verbs", "sheer_words", "expose_verbs",
     "body_parts", "minor_words", "youthful"]
)
# Handles that address the generator rather than a person.
_BOT_HANDLES = frozenset(
    {"grok", "bot", "ai", "chatgpt", "gpt", "openai", "gemini", "dalle", "midjourney",
     "copilot", "metaai", "meta", "claude", "sora", "flux", "imagine", "perplexity",
     "llama", "stablediffusion", "sd", "leonardo", "ideogram", "firefly", "bing"}
)
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
         "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
         "seventeen", "eighteen", "nineteen", "twenty"]
    )
}
_NUMBER_WORDS.update({"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60})

# Letters that look alike, tried when a word is unknown: "nvde" (v for u), "rnilf" (rn
# for m), "vvhore" (vv for w), "nucle" (cl for d), "nake1" is leetspeak (normalise.py).
_LOOKALIKE_LETTERS = (("v", "u"), ("rn", "m"), ("vv", "w"), ("cl", "d"), ("u", "v"),
                      ("y", "i"), ("i", "y"))
# Lists whose words are recognised glued to other letters ("nakedpor", "nrbreasts").
_GLUE_KEYS = ("nudity", "sexual_act", "nsfw")
# English only (a Dutch "slet" would find Kate Winslet), without the short words that
# end surnames ("Hitchcock", "Babcock").
_NOT_GLUED = frozenset({"anal", "arse", "nips", "cooch", "dong", "cunt", "twat", "bang",
                        "cock", "dick", "tits", "titty", "cums"})
# Symbols people put inside a word to break it ("na*ked", "nu.de", "n^de").
_INSERTED = frozenset("*._^~+'`-")

WINDOW = 4  # tokens allowed between the two parts of a composition
CHAR_WINDOW = 8  # the same for scripts written without spaces, in characters
CONTINUATION_WORDS = 6  # a "go on" request is this short ("now do the rest please")
FILLERS = 2  # filler words allowed between the words of a phrase


class LexiconError(ValueError):
    """A lexicon file does not follow FORMAT.md; the message names file and key."""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """One language's lexicon as written in its YAML file."""

    language: str
    name: str
    spaced: bool
    lists: dict[str, tuple[str, ...]]
    path: Path


def load_lexicon(path: Path) -> Lexicon:
    """Read and validate one lexicon file; raise ``LexiconError`` naming file and key."""
    where = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LexiconError(f"{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise LexiconError(f"{where}: top level must be a mapping of keys to lists")
    unknown = sorted(set(data) - LIST_KEYS - META_KEYS)
    if unknown:
        raise LexiconError(
            f"{where}: unknown key {unknown[0]!r} (allowed: see lexicon/FORMAT.md)"
        )
    language = data.get("language")
    if not isinstance(language, str) or not re.fullmatch(r"[a-z]{2,3}", language):
        raise LexiconError(f"{where}: key 'language' must be an ISO 639-1 code")
    if language != path.stem:
        raise LexiconError(f"{where}: key 'language' is {language!r}, file is {path.stem!r}")
    spaced = data.get("spaced", True)
    if not isinstance(spaced, bool):
        raise LexiconError(f"{where}: key 'spaced' must be true or false")
    name = data.get("name", language)
    if not isinstance(name, str):
        raise LexiconError(f"{where}: key 'name' must be text")
    lists: dict[str, tuple[str, ...]] = {}
    for key in LIST_KEYS:
        value = data.get(key)
        if value is None:
            lists[key] = ()
            continue
        if not isinstance(value, list):
            raise LexiconError(f"{where}: key {key!r} must be a list of strings")
        for v in value:
            if not isinstance(v, str):
                raise LexiconError(
                    f"{where}: key {key!r}: entry {v!r} is not text (YAML reads bare "
                    "no/yes/on/off/true/false and numbers as other types: quote it)"
                )
        for entry in value:
            if not entry.strip():
                raise LexiconError(f"{where}: key {key!r} has an empty entry")
            if not entry.startswith("re:") and key != "age_patterns" and not any(
                    ch.isalpha() for ch in entry):
                # Matching drops punctuation: a literal "18+" would match every bare 18.
                raise LexiconError(
                    f"{where}: key {key!r}: {entry!r} has no letters, so it would match "
                    "bare numbers or symbols; write it as a re: pattern")
            if key == "age_patterns" or entry.startswith("re:"):
                source = entry[3:] if entry.startswith("re:") else entry
                try:
                    compiled = re.compile(fold_regex(source))
                except re.error as exc:
                    raise LexiconError(
                        f"{where}: key {key!r}: bad regular expression {entry!r}: {exc}"
                    ) from exc
                if key == "age_patterns" and compiled.groups != 1:
                    raise LexiconError(
                        f"{where}: key 'age_patterns': {entry!r} must have exactly one "
                        "group capturing the age"
                    )
        lists[key] = tuple(value)
    return Lexicon(language, name, spaced, lists, path)


def load_lexicons(folder: Path = LEXICON_DIR) -> tuple[Lexicon, ...]:
    """Every ``*.yaml`` lexicon in ``folder``, validated, in file-name order."""
    return tuple(load_lexicon(p) for p in sorted(folder.glob("*.yaml")))


# --- compiled lexicon ----------------------------------------------------------------

Piece = tuple[str, bool]  # folded text, is_prefix
Alternative = tuple[Piece, ...]  # pieces matched back to back ("co-worker")
Slot = tuple[Alternative, ...]  # alternatives for one word ("my|his|her")
# A slot for matching: exact one-word alternatives, one-word prefixes, the rest.
_FastSlot = tuple[frozenset[str], tuple[str, ...], tuple[Alternative, ...]]


def _fast_slot(slot: Slot) -> _FastSlot:
    exact = frozenset(a[0][0] for a in slot if len(a) == 1 and not a[0][1])
    prefixes = tuple(a[0][0] for a in slot if len(a) == 1 and a[0][1])
    multi = tuple(a for a in slot if len(a) > 1)
    return exact, prefixes, multi


def _may_start(slot: _FastSlot, forms: frozenset[str]) -> bool:
    """Whether ``slot`` can match at a word with one of ``forms``: a necessary condition
    of ``PromptAnalyser._slot_ends``."""
    exact, prefixes, multi = slot
    return (not exact.isdisjoint(forms)
            or any(f.startswith(p) for p in prefixes for f in forms)
            or any(any(f.startswith(text) for f in forms) if is_prefix else text in forms
                   for (text, is_prefix), *_ in multi))


@dataclass(frozen=True, slots=True)
class _Entry:
    lang: str
    key: str
    phrase: str  # as written in the lexicon
    slots: tuple[Slot, ...] = ()
    regex: re.Pattern[str] | None = None
    fast: tuple[_FastSlot, ...] = ()  # slots split for quick matching



@dataclass(slots=True)
class _Hit:
    entry: _Entry
    start: int  # normalised-text offsets
    end: int
    t0: int = -1  # real tokens covered, [t0, t1); -1 for character-level matches
    t1: int = -1
    age: int | None = None

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def lang(self) -> str:
        return self.entry.lang


def _collapse(word: str) -> str:
    """'nuuude' -> 'nude', 'booobs' -> 'bobs': runs of one letter become one letter."""
    out = []
    prev = ""
    for c in word:
        if c != prev:
            out.append(c)
        prev = c
    return "".join(out)


def _within_one(a: str, b: str) -> bool:
    """Damerau-Levenshtein distance of at most one (one typo or one swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diffs = [i for i in range(la) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    if la > lb:
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i:] == b[i + 1 :]


def _load_english_words() -> frozenset[str]:
    """A large English word list: a word in it is never 'repaired' into a lexicon word."""
    try:
        from english_words import get_english_words_set
    except ImportError:  # pragma: no cover - a declared dependency
        return frozenset()
    return frozenset(get_english_words_set(["web2", "gcide"], lower=True, alpha=True))


def _load_first_names() -> tuple[frozenset[str], frozenset[str]]:
    """First names from the gender-guesser package's name dictionary, folded.

    Returns all names, and those common in Britain, Ireland or the USA (frequency code
    4 or more there): only these count in prompts written without capitals, where
    names from everywhere would collide with ordinary words of other languages.
    """
    try:
        import gender_guesser
    except ImportError:  # pragma: no cover - a declared dependency
        return frozenset(), frozenset()
    path = Path(gender_guesser.__file__).with_name("data") / "nam_dict.txt"
    names: set[str] = set()
    common: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line or line[0] in "#=":
                continue
            parts = line.split()
            if len(parts) < 2 or "+" in parts[1]:
                continue
            name = fold_phrase(parts[1])
            if not name.isalpha() or len(name) < 3:
                continue
            names.add(name)
            freq = line[30:33]  # great_britain, ireland, usa columns (hex digits)
            if any(c in "456789ABCDabcd" for c in freq):
                common.add(name)
    return frozenset(names), frozenset(common)


def _is_latin_word(word: str) -> bool:
    return word.isascii() and word.isalpha()


def _is_cyrillic_or_latin(word: str) -> bool:
    """Latin letters with accents, or Cyrillic: scripts whose words the vocabulary and
    the English dictionary can tell apart."""
    return all("a" <= c <= "z" or "\u00c0" <= c <= "\u024f" or "\u0400" <= c <= "\u04ff"
               for c in word)


class PromptAnalyser:
    """Analyses prompts against every lexicon; build once per process and reuse."""

    def __init__(
        self,
        lexicons: Sequence[Lexicon] | None = None,
        *,
        english_words: frozenset[str] | None = None,
        first_names: frozenset[str] | None = None,
    ) -> None:
        self.lexicons = tuple(load_lexicons() if lexicons is None else lexicons)
        self._english = _load_english_words() if english_words is None else english_words
        if first_names is None:
            names, common_names = _load_first_names()
        else:
            names = common_names = first_names
        self._entries: list[_Entry] = []
        self._exact_first: dict[str, list[int]] = {}
        self._prefix_first: dict[str, list[int]] = {}
        self._prefix_lengths: tuple[int, ...] = ()
        self._regex_entries: list[_Entry] = []
        self._regex_entries_by_literal: list[tuple[str, _Entry]] = []
        self._unspaced: list[tuple[str, re.Pattern[str], list[_Entry]]] = []
        self._vocab: set[str] = set()  # single words of any lexicon, exact
        self._fuzzy_targets: set[str] = set()
        self._sensitive: set[str] = set()  # single sensitive words, for look-alike repairs
        self._titles: set[str] = set()
        self._compile()
        self._regex_entries_by_literal = [(_required_literal(e.regex.pattern), e)
                                          for e in self._regex_entries if e.regex is not None]
        # Names that are ordinary words elsewhere ("ella", "luz", "will") are only names
        # when capitalised; see _names.
        self._first_names = names
        self._common_first_names = common_names
        self._collapsed: dict[str, set[str]] = {}
        for w in self._vocab:
            if len(w) >= 3:
                self._collapsed.setdefault(_collapse(w), set()).add(w)
        self._fuzzy: dict[str, set[str]] = {}
        for w in self._fuzzy_targets:
            for k in {w, *(w[:i] + w[i + 1 :] for i in range(len(w)))}:
                self._fuzzy.setdefault(k, set()).add(w)
        self._form_cache: dict[str, tuple[str, ...]] = {}
        # Words that stay recognisable glued to another ("nakedpor"): explicit single
        # words of five letters or more, longest first.
        self._glue_words = tuple(sorted(
            {p for lex in self.lexicons if lex.language == "en"
             for key in _GLUE_KEYS for p in lex.lists[key]
             if p.isascii() and p.isalpha() and len(p) >= 4 and p not in _NOT_GLUED},
            key=len, reverse=True))

    # -- compiling -----------------------------------------------------------------

    def _compile(self) -> None:
        prefix_lengths: set[int] = set()
        for lex in self.lexicons:
            unspaced_by_key: dict[str, list[_Entry]] = {}
            for key, phrases in lex.lists.items():
                for phrase in phrases:
                    if key == "age_patterns" or phrase.startswith("re:"):
                        source = phrase[3:] if phrase.startswith("re:") else phrase
                        entry = _Entry(lex.language, key, phrase,
                                       regex=re.compile(fold_regex(source)))
                        self._regex_entries.append(entry)
                        continue
                    if not lex.spaced:
                        entry = _Entry(lex.language, key, phrase,
                                       regex=re.compile(self._unspaced_pattern(phrase)))
                        unspaced_by_key.setdefault(key, []).append(entry)
                        continue
                    slots = self._slots(phrase)
                    if not slots:
                        continue
                    entry = _Entry(lex.language, key, phrase, slots,
                                   fast=tuple(_fast_slot(sl) for sl in slots))
                    eid = len(self._entries)
                    self._entries.append(entry)
                    if key == "titles":
                        for alt in slots[0]:
                            self._titles.add(alt[0][0])
                    for alt in slots[0]:
                        text, is_prefix = alt[0]
                        if is_prefix:
                            self._prefix_first.setdefault(text, []).append(eid)
                            prefix_lengths.add(len(text))
                        else:
                            self._exact_first.setdefault(text, []).append(eid)
                    for slot in slots:
                        for alt in slot:
                            if len(alt) == 1 and not alt[0][1]:
                                word = alt[0][0]
                                self._vocab.add(word)
                                # Typo repair aims at English terms only: the word list
                                # that keeps real words from being "repaired" is English,
                                # so a Spanish "seis" would otherwise become "sexis".
                                if (len(slots) == 1 and key in _FUZZY_KEYS
                                        and len(word) >= 4 and _is_latin_word(word)):
                                    self._sensitive.add(word)
                                if (
                                    lex.language == "en"
                                    and len(slots) == 1
                                    and key in _FUZZY_KEYS
                                    and len(word) >= 5
                                    and _is_latin_word(word)
                                ):
                                    self._fuzzy_targets.add(word)
            for key, entries in unspaced_by_key.items():
                combined = re.compile("|".join(f"(?:{e.regex.pattern})" for e in entries
                                               if e.regex is not None))
                self._unspaced.append((key, combined, entries))
        self._prefix_lengths = tuple(sorted(prefix_lengths))

    @staticmethod
    def _slots(phrase: str) -> tuple[Slot, ...]:
        slots: list[Slot] = []
        for word in phrase.split():
            alts: list[Alternative] = []
            for alt in word.split("|"):
                if not alt:
                    continue
                is_prefix = alt.endswith("*")
                body = alt.rstrip("*")
                pieces = [t.forms[0] for t in tokenise(normalise(body)).words if t.forms]
                if not pieces:
                    continue
                seq = (*tuple((p, False) for p in pieces[:-1]), (pieces[-1], is_prefix))
                alts.append(seq)
                if len(pieces) > 1:
                    # "co-worker" also matches "coworker"
                    alts.append((("".join(pieces), is_prefix),))
            if alts:
                slots.append(tuple(dict.fromkeys(alts)))
        return tuple(slots)

    @staticmethod
    def _unspaced_pattern(phrase: str) -> str:
        words = []
        for word in phrase.split():
            alts = [re.escape(fold_phrase(a.rstrip("*"))) for a in word.split("|") if a]
            words.append("(?:" + "|".join(alts) + ")")
        return f".{{0,{CHAR_WINDOW}}}?".join(words)

    # -- word forms ----------------------------------------------------------------

    def _is_english(self, w: str) -> bool:
        e = self._english
        if w in e:
            return True
        for suffix, repl in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"),
                             ("ing", ""), ("ing", "e"), ("er", ""), ("ly", "")):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                stem = w[: -len(suffix)] + repl
                if stem in e:
                    return True
                # stripped, stripping: doubled consonant before the suffix
                if suffix in ("ed", "ing", "er") and repl == "" and len(stem) > 3 \
                        and stem[-1] == stem[-2] and stem[:-1] in e:
                    return True
        return False

    def _forms(self, token: Token) -> tuple[str, ...]:
        """Token spellings plus repairs: plurals, repeated letters, one-letter typos."""
        cached = self._form_cache.get(token.text)
        if cached is not None:
            return cached
        forms = list(token.forms)
        vocab = self._vocab
        for f in token.forms:
            if f in vocab or not f.isalpha():
                continue
            for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
                if f.endswith(suffix) and len(f) - len(suffix) >= 2:
                    stem = f[: -len(suffix)] + repl
                    if stem in vocab:
                        forms.append(stem)
            if len(f) < 4 or not _is_latin_word(f) or self._is_english(f):
                continue
            collapsed = _collapse(f)
            if collapsed != f:
                forms.extend(self._collapsed.get(collapsed, ()))
            if len(forms) == len(token.forms) and f not in self._first_names:
                for key in {f, *(f[:i] + f[i + 1 :] for i in range(len(f)))}:
                    for target in self._fuzzy.get(key, ()):
                        if target[0] == f[0] and _within_one(f, target):
                            forms.append(target)
            if len(forms) == len(token.forms) and f not in self._first_names:
                forms.extend(self._lookalike_forms(f))
        result = tuple(dict.fromkeys(forms))
        if len(self._form_cache) > 100_000:
            self._form_cache.clear()
        self._form_cache[token.text] = result
        return result

    def _lookalike_forms(self, f: str) -> list[str]:
        """Repairs for letters swapped for look-alikes ('nvde', 'rnilf', 'vvhore') and
        for a sexual word glued to another ('nakedpor', 'nrbreasts'). Only into sensitive
        vocabulary, and never from a word of the dictionary or a first name (checked by
        the caller)."""
        out: list[str] = []
        for a, b in _LOOKALIKE_LETTERS:
            if a in f:
                swapped = f.replace(a, b)
                if swapped in self._sensitive:
                    out.append(swapped)
        if not out and len(f) >= 7:
            for word in self._glue_words:
                if len(f) - len(word) >= 2 and (f.startswith(word) or f.endswith(word)):
                    out.append(word)
                    break
        return out

    # -- matching ------------------------------------------------------------------

    def analyse(self, prompt: str) -> PromptFindings:
        """Analyse one prompt. Thread-safe; microseconds to a millisecond per prompt."""
        nt = normalise(prompt)
        toks = tokenise(nt)
        words = toks.words
        n = len(words)
        edges: list[list[tuple[int, tuple[str, ...]]]] = [[] for _ in range(n)]
        for i, w in enumerate(words):
            edges[i].append((i + 1, self._forms(w) if w.forms else ()))
        for sp in toks.spread:
            edges[sp.first].append((sp.last + 1, self._forms(sp)))
        self._join_pairs(nt, words, edges)

        hits = self._match_spaced(words, toks.gaps, edges)
        hits.extend(self._match_regex(nt, words))
        hits.extend(self._match_unspaced(nt, words))
        return self._findings(nt, toks, hits)

    def _join_pairs(self, nt: NormalisedText, words: Sequence[Token],
                    edges: list[list[tuple[int, tuple[str, ...]]]]) -> None:
        """'bi kini', 'top less', 'see through': two words that make one lexicon word."""
        text = nt.text
        for i in range(len(words) - 1):
            a, b = words[i], words[i + 1]
            if not a.forms or not b.forms or b.start - a.end > 2:
                continue
            between = text[a.end : b.start]
            if len(between) == 1 and between in _INSERTED:
                # One symbol inside a word: "na*ked", "nu.de"; or standing for a vowel:
                # "n^de", "s*x".
                for joined in (a.forms[0] + b.forms[0],
                               *(a.forms[0] + v + b.forms[0] for v in "aeiouy")):
                    if joined in self._sensitive:
                        edges[i].append((i + 2, (joined,)))
                        break
                continue
            if any(c not in " -_" for c in between):
                continue
            joined = a.forms[0] + b.forms[0]
            # "bi kini" joins; "shirt less" (wrinkly) does not: two real words stay apart.
            if (
                len(joined) >= 6
                and joined in self._vocab
                and not (self._is_english(a.forms[0]) and self._is_english(b.forms[0]))
            ):
                edges[i].append((i + 2, (joined,)))

    def _match_spaced(self, words: Sequence[Token], gaps: Sequence[int],
                      edges: list[list[tuple[int, tuple[str, ...]]]]) -> list[_Hit]:
        hits: list[_Hit] = []
        exact, prefix, lengths = self._exact_first, self._prefix_first, self._prefix_lengths
        n = len(words)
        # An entry whose later words appear nowhere in the prompt cannot match: most
        # candidates are ruled out here, before the search for their words in order.
        present = frozenset(f for out in edges for _, forms in out for f in forms)
        seen: dict[int, bool] = {}
        for i in range(n):
            cands: set[int] = set()
            for _, forms in edges[i]:
                for f in forms:
                    found = exact.get(f)
                    if found:
                        cands.update(found)
                    for length in lengths:
                        if length > len(f):
                            break
                        found = prefix.get(f[:length])
                        if found:
                            cands.update(found)
            for eid in sorted(cands):
                entry = self._entries[eid]
                possible = seen.get(eid)
                if possible is None:
                    possible = seen[eid] = all(_may_start(slot, present)
                                               for slot in entry.fast[1:])
                if not possible:
                    continue
                end = self._match_slots(entry.fast, 0, i, edges, gaps, n)
                if end > i:
                    hits.append(_Hit(entry, words[i].start, words[end - 1].end, i, end))
        return hits

    def _match_slots(self, slots: tuple[_FastSlot, ...], k: int, pos: int,
                     edges: list[list[tuple[int, tuple[str, ...]]]], gaps: Sequence[int],
                     n: int) -> int:
        """End of the shortest match of ``slots[k:]`` starting at token ``pos``, or -1."""
        for end in self._slot_ends(slots[k], pos, edges, n):
            if k + 1 == len(slots):
                return end
            for nxt in range(end, min(end + FILLERS + 1, n)):
                if gaps[nxt] >= GAP_COMMA:
                    break
                r = self._match_slots(slots, k + 1, nxt, edges, gaps, n)
                if r > 0:
                    return r
        return -1

    def _slot_ends(self, slot: _FastSlot, pos: int,
                   edges: list[list[tuple[int, tuple[str, ...]]]], n: int) -> Iterator[int]:
        if pos >= n:
            return
        exact, prefixes, multi = slot
        for nxt, forms in edges[pos]:
            for f in forms:
                if f in exact or (prefixes and any(f.startswith(p) for p in prefixes)):
                    yield nxt
                    break
        for alt in multi:
            yield from self._match_alt(alt, 0, pos, edges, n)

    def _match_alt(self, pieces: Alternative, idx: int, pos: int,
                   edges: list[list[tuple[int, tuple[str, ...]]]], n: int) -> Iterator[int]:
        if idx == len(pieces):
            yield pos
            return
        if pos >= n:
            return
        text, is_prefix = pieces[idx]
        for nxt, forms in edges[pos]:
            ok = any(f.startswith(text) for f in forms) if is_prefix else text in forms
            if ok:
                yield from self._match_alt(pieces, idx + 1, nxt, edges, n)

    @staticmethod
    def _token_range(words: Sequence[Token], start: int, end: int) -> tuple[int, int]:
        t0 = t1 = -1
        for i, w in enumerate(words):
            if w.end > start and w.start < end:
                if t0 < 0:
                    t0 = i
                t1 = i + 1
        return t0, t1

    def _match_regex(self, nt: NormalisedText, words: Sequence[Token]) -> list[_Hit]:
        text = nt.text
        hits: list[_Hit] = []
        # Only patterns whose required literal occurs in the text are run: hundreds of
        # separate regex scans per prompt were most of the analysis time.
        for literal, entry in self._regex_entries_by_literal:
            if literal and literal not in text:
                continue
            assert entry.regex is not None
            for m in entry.regex.finditer(text):
                if m.end() > m.start():
                    hits.append(self._regex_hit(entry, m, words))
        return hits

    def _regex_hit(self, entry: _Entry, m: re.Match[str], words: Sequence[Token]) -> _Hit:
        age = _parse_age(m.group(1)) if entry.key == "age_patterns" else None
        t0, t1 = self._token_range(words, m.start(), m.end())
        return _Hit(entry, m.start(), m.end(), t0, t1, age)

    def _match_unspaced(self, nt: NormalisedText, words: Sequence[Token]) -> list[_Hit]:
        text = nt.text
        if not self._unspaced or text.isascii():
            return []
        hits: list[_Hit] = []
        for _key, combined, entries in self._unspaced:
            for m in combined.finditer(text):
                for entry in entries:
                    assert entry.regex is not None
                    m2 = entry.regex.match(text, m.start())
                    if m2 and m2.end() > m2.start():
                        t0, t1 = self._token_range(words, m2.start(), m2.end())
                        hits.append(_Hit(entry, m2.start(), m2.end(), t0, t1))
                        break
        return hits

    # -- from hits to findings -----------------------------------------------------

    def _findings(self, nt: NormalisedText, toks: Tokens, hits: list[_Hit]) -> PromptFindings:
        words, gaps = toks.words, toks.gaps
        by_key: dict[str, list[_Hit]] = {}
        for h in hits:
            by_key.setdefault(h.key, []).append(h)

        def span(start: int, end: int, lang: str) -> Span:
            s, e = nt.original_span(start, end)
            return Span(s, e, nt.original[s:e], lang)

        idioms = by_key.get("idioms", [])
        clothed = by_key.get("clothed", [])
        shields = idioms + clothed

        def shielded(h: _Hit, among: Iterable[_Hit]) -> bool:
            return any(o.start < h.end and h.start < o.end for o in among)

        # Sexual concepts named outright.
        sexual: list[tuple[_Hit, Concept, str]] = []
        for key, concept in CONCEPT_KEYS.items():
            for h in by_key.get(key, []):
                sexual.append((h, concept, f"{h.lang}:{key}:{h.entry.phrase}"))

        # Compositions.
        locatives = by_key.get("locatives", [])

        def located(part: _Hit, head: _Hit) -> bool:
            """'the stain ON her shirt': the garment is where, not what is removed."""
            if part.t0 < 0:
                return False
            # Any language's locative counts: loanwords ("shirt", "remove") belong to
            # several lexicons, and the locative is usually in the prompt's own language.
            return any(
                part.t0 - 2 <= loc.t1 - 1 < part.t0
                and not (loc.start < head.end and head.start < loc.end)
                for loc in locatives
            )

        frames = by_key.get("image_frames", [])
        possessives = [h for h in by_key.get("pronouns", []) if h.t1 >= 0]
        from_image_garments: list[_Hit] = []

        def from_image(garment: _Hit) -> bool:
            """'the onesie FROM THE PICTURE', with no one's garment named ('her shirt')."""
            if garment.t0 < 0:
                return False
            owned = any(garment.t0 - 2 <= p.t1 - 1 < garment.t0 for p in possessives)
            return not owned and any(
                garment.t1 <= f.t0 <= garment.t1 + 2
                and all(gaps[j] == GAP_SPACE for j in range(garment.t1, f.t0 + 1))
                for f in frames if f.t0 >= 0
            )

        def compose(a_key: str, b_key: str, concept: Concept, rule: str,
                    window: int = WINDOW, a_keys: Sequence[str] = ()) -> None:
            heads = [h for k in (a_key, *a_keys) for h in by_key.get(k, [])]
            parts = [h for h in by_key.get(b_key, []) if not shielded(h, shields)]
            if not heads or not parts:
                return
            heads = [h for h in heads if not shielded(h, idioms)]
            for a in heads:
                near = [b for b in parts
                        if _near(a, b, gaps, nt.text, window) and not located(b, a)]
                if not near:
                    continue
                # The garment the verb acts on: the nearest one after it ("remove the
                # jacket and the top"), else the nearest before it ("shirt disappear").
                after = [b for b in near if b.start >= a.start]
                b = (min(after, key=lambda h: h.start) if after
                     else max(near, key=lambda h: h.end))
                s, e = min(a.start, b.start), max(a.end, b.end)
                t0 = min(a.t0, b.t0) if a.t0 >= 0 and b.t0 >= 0 else -1
                t1 = max(a.t1, b.t1) if t0 >= 0 else -1
                if concept is Concept.UNDRESS and from_image(b):
                    # "remove the baby onesie from the picture": a thing taken out of the
                    # image, not clothing taken off someone. Uncertain: a person decides.
                    from_image_garments.append(b)
                    sexual.append((_Hit(a.entry, s, e, t0, t1), Concept.SUGGESTIVE,
                                   f"{a.lang}:{rule}+from_image"))
                    continue
                sexual.append((_Hit(a.entry, s, e, t0, t1), concept, f"{a.lang}:{rule}"))

        compose("removal_verbs", "inner_garments", Concept.UNDRESS, "remove+inner_garment")
        compose("reduce_words", "inner_garments", Concept.REVEALING, "reduce+garment",
                window=3)
        compose("sheer_words", "inner_garments", Concept.SHEER, "sheer+garment")
        compose("expose_verbs", "body_parts", Concept.NUDITY, "expose+body_part",
                window=3, a_keys=("removal_verbs",))

        # Negations cancel what they negate; idioms cancel what they cover.
        negations = by_key.get("negations", [])
        benign: list[BenignFinding] = []
        kept: list[tuple[_Hit, Concept, str]] = []
        for h, concept, rule in sexual:
            if shielded(h, idioms):
                continue
            neg = _negated(h, negations, gaps) if concept in _NEGATABLE else None
            if neg is not None:
                benign.append(BenignFinding(
                    BenignCue.NON_SEXUAL_CONTEXT, span(neg.start, h.end, h.lang),
                    f"{neg.lang}:negation:{neg.entry.phrase}"))
                continue
            kept.append((h, concept, rule))
        kept = _outermost(kept)
        sexual_findings = tuple(
            SexualFinding(c, span(h.start, h.end, h.lang), rule) for h, c, rule in kept
        )

        # Minors.
        minors: list[tuple[_Hit, MinorFinding]] = []
        for key, cue in MINOR_KEYS.items():
            for h in by_key.get(key, []):
                if shielded(h, idioms) or any(
                    r.start <= h.start and h.end <= r.end and r.end - r.start > h.end - h.start
                    for r in by_key.get("revealing", [])
                ):
                    # an idiom ("kid gloves"), or a garment name ("baby-doll nightie")
                    continue
                if h.t1 >= 0 and any(g.t0 == h.t1 for g in from_image_garments):
                    continue  # "the baby onesie from the picture": a kind of garment
                minors.append((h, MinorFinding(cue, span(h.start, h.end, h.lang),
                                               f"{h.lang}:{key}:{h.entry.phrase}", h.age)))
        minor_findings = tuple(f for _, f in _outermost_pairs(minors))

        # Real people.
        not_people = by_key.get("not_people", [])
        persons: list[tuple[_Hit | None, int, int, PersonFinding]] = []
        for key, person_cue in PERSON_KEYS.items():
            for h in by_key.get(key, []):
                if shielded(h, not_people):
                    continue
                persons.append((h, h.start, h.end, PersonFinding(
                    person_cue, span(h.start, h.end, h.lang),
                    f"{h.lang}:{key}:{h.entry.phrase}")))
        for s, e, rule in self._names(nt, words, gaps):
            if any(o.start < e and s < o.end for o in not_people):
                continue
            persons.append((None, s, e, PersonFinding(PersonCue.NAME, span(s, e, "und"), rule)))
        for idx, w in enumerate(words):
            if w.kind != "handle":
                continue
            name = w.text[1:].lower()
            leading = all(words[j].kind == "handle" for j in range(idx + 1))
            if leading or name.replace("_", "").replace(".", "") in _BOT_HANDLES:
                continue  # "@grok put her in ...": the generator being addressed
            persons.append((None, w.start, w.end, PersonFinding(
                PersonCue.HANDLE, span(w.start, w.end, "und"), "handle")))
        person_findings = _dedupe_persons(persons)

        # Benign context.
        for key, benign_cue in BENIGN_KEYS.items():
            for h in by_key.get(key, []):
                benign.append(BenignFinding(benign_cue, span(h.start, h.end, h.lang),
                                            f"{h.lang}:{key}:{h.entry.phrase}"))
        seen: set[tuple[BenignCue, int, int]] = set()
        unique: list[BenignFinding] = []
        for b in sorted(benign, key=lambda b: b.span.start):
            if (b.cue, b.span.start, b.span.end) not in seen:
                seen.add((b.cue, b.span.start, b.span.end))
                unique.append(b)
        benign_findings = tuple(unique)

        spans: list[Span] = [*(f.span for f in sexual_findings),
                             *(f.span for f in minor_findings),
                             *(f.span for f in person_findings),
                             *(f.span for f in benign_findings)]
        languages = sorted({sp.language for sp in spans} - {"und"})
        return PromptFindings(
            prompt=nt.original,
            normalised=_display(nt, words),
            sexual=sexual_findings,
            persons=person_findings,
            minors=minor_findings,
            benign=benign_findings,
            languages=tuple(languages),
            continuation=_is_continuation(words, by_key.get("continuations", [])),
            unknown_language=self._unknown_language(words),
        )

    def _unknown_language(self, words: Sequence[Token]) -> bool:
        """Whether most words are in no lexicon and not English (two words at least)."""
        real = [w for w in words if w.kind == "word" and w.forms]
        if len(real) < 2:
            return False
        known = 0
        for w in real:
            f = w.forms[0]
            if not _is_latin_word(f) and not _is_cyrillic_or_latin(f):
                known += 1  # scripts of their own (CJK, Thai, Arabic...) have lexicons
            elif f in self._vocab or self._is_english(f) or f.isdigit():
                known += 1
        return known / len(real) < 0.4

    # -- names ---------------------------------------------------------------------

    def _common(self, w: str) -> bool:
        return len(w) < 3 or w in self._vocab or self._is_english(w)

    def _names(self, nt: NormalisedText, words: Sequence[Token],
               gaps: Sequence[int]) -> list[tuple[int, int, str]]:
        """People named in the prompt: "Natalie Portman", "Mrs Patel", "make Emma ...".

        Latin script only. Capitalised words that are first names, titles followed by a
        surname, capitalised runs of words no dictionary knows ("Dua Lipa"), and in
        lowercase prompts a first name followed by a surname-like word.
        """
        orig = nt.original
        letters = [c for c in orig if c.isalpha()]
        caps_informative = bool(letters) and not all(c.isupper() for c in letters)
        out: list[tuple[int, int, str]] = []
        n = len(words)

        def word(i: int) -> str:
            w = words[i]
            f = w.forms[0] if w.kind == "word" and w.forms else ""
            return f if _is_latin_word(f) else ""

        def cap(i: int) -> bool:
            return caps_informative and orig[nt.starts[words[i].start]].isupper()

        def sentence_start(i: int) -> bool:
            return all(words[j].kind == "handle" for j in range(i)) or gaps[i] == GAP_STOP

        names = self._first_names
        i = 0
        while i < n:
            w = word(i)
            if not w:
                i += 1
                continue
            # Mrs Patel, Dr. Smith, ms jones
            if w in self._titles and i + 1 < n and word(i + 1) in self._titles:
                i += 1  # "my teacher Mrs Patel": the name starts at the last title
                continue
            if w in self._titles and i + 1 < n and word(i + 1) and (
                cap(i + 1) or not self._common(word(i + 1))
            ) and nt.text[words[i].end : words[i + 1].start].strip(" .") == "":
                j = i + 2
                while j < n and word(j) and cap(j) and gaps[j] == GAP_SPACE and j - i < 4:
                    j += 1
                out.append((words[i].start, words[j - 1].end, "name:title"))
                i = j
                continue
            if cap(i):
                j = i + 1
                while j < n and word(j) and cap(j) and gaps[j] == GAP_SPACE and j - i < 4:
                    j += 1
                run = list(range(i, j))
                # "Make Emma nude": a capitalised ordinary word opening the sentence.
                while run and sentence_start(run[0]) and word(run[0]) not in names \
                        and self._common(word(run[0])):
                    run = run[1:]
                if run and self._is_name_run([word(k) for k in run],
                                             sentence_start(run[0])):
                    out.append((words[run[0]].start, words[run[-1]].end, "name:capitalised"))
                i = j
                continue
            # natalie portman (no capitals): a first name then a surname-like word.
            if (
                w in self._common_first_names and not self._common(w) and i + 1 < n
                and word(i + 1)
                and not cap(i + 1) and not self._common(word(i + 1))
                and word(i + 1) not in self._english
            ):
                out.append((words[i].start, words[i + 1].end, "name:first+surname"))
                i += 2
                continue
            i += 1
        return out

    def _is_name_run(self, run: list[str], at_start: bool) -> bool:
        names = self._first_names
        first = run[0]
        if len(run) == 1:
            return first in names and (not self._common(first) or not at_start)
        if first in names and (not at_start or not self._common(first)):
            return True
        # "Dua Lipa", "Rishi Sunak": capitalised words no dictionary knows.
        return not self._common(first) and not self._common(run[-1])


# Words that may stand beside "more" / "again" in a request that only says "go on".
_CONTINUATION_FILLERS = frozenset([
    "now", "please", "pls", "plz", "do", "it", "the", "and", "then", "ok", "okay", "some", "a",
    "bit", "little", "with", "her", "him", "them", "that", "this", "same", "thing", "just",
    "yes", "yeah", "lol", "again", "more", "por", "favor", "bitte", "per", "favore", "vous",
    "plait", "s", "il", "ja", "si", "sí", "oui"
])


def _is_continuation(words: Sequence[Token], hits: Sequence[_Hit]) -> bool:
    """A request that only makes sense as "go on": a continuation word ("more", "the
    rest") and at most one other word that is not a filler, six words at most."""
    real = [i for i, w in enumerate(words) if w.kind == "word"]
    if not hits or not real or len(real) > CONTINUATION_WORDS:
        return False
    covered = {i for h in hits if h.t0 >= 0 for i in range(h.t0, h.t1)}
    others = [i for i in real if i not in covered
              and (words[i].forms[0] if words[i].forms else "") not in _CONTINUATION_FILLERS]
    return len(others) <= 1


def _parse_age(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return _NUMBER_WORDS.get(text)


def _near(a: _Hit, b: _Hit, gaps: Sequence[int], text: str, window: int) -> bool:
    """Whether two hits are close enough to compose, in either order."""
    if a.start < b.end and b.start < a.end:
        return True
    if a.t0 >= 0 and b.t0 >= 0:
        first, second = (a, b) if a.t1 <= b.t0 else (b, a)
        distance = second.t0 - first.t1
        for j in range(first.t1, second.t0 + 1):
            if gaps[j] == GAP_STOP:
                return False
            if gaps[j] == GAP_COMMA:
                distance += 2
        return distance <= window
    first, second = (a, b) if a.end <= b.start else (b, a)
    between = text[first.end : second.start]
    return len(between) <= CHAR_WINDOW and not any(c in ".!?;。！？；\n" for c in between)


def _negated(h: _Hit, negations: Sequence[_Hit], gaps: Sequence[int]) -> _Hit | None:
    for neg in negations:
        if neg.t1 < 0 or h.t0 < 0:
            continue
        if h.t0 - 1 <= neg.t1 <= h.t0 and neg.t0 < h.t0 and all(
            gaps[j] < GAP_COMMA for j in range(neg.t1, h.t0 + 1)
        ):
            return neg
    return None


def _outermost(items: list[tuple[_Hit, Concept, str]]) -> list[tuple[_Hit, Concept, str]]:
    """Drop a finding inside another of the same concept ("naked" in "stark naked")."""
    items = sorted(items, key=lambda x: (x[0].start, -(x[0].end - x[0].start)))
    out: list[tuple[_Hit, Concept, str]] = []
    for h, c, rule in items:
        if any(o.start <= h.start and h.end <= o.end and oc == c for o, oc, _ in out):
            continue
        out.append((h, c, rule))
    return out


def _outermost_pairs(items: list[tuple[_Hit, MinorFinding]]) -> list[tuple[_Hit, MinorFinding]]:
    items = sorted(items, key=lambda x: (x[0].start, -(x[0].end - x[0].start)))
    out: list[tuple[_Hit, MinorFinding]] = []
    for h, f in items:
        if any(o.start <= h.start and h.end <= o.end and of.cue == f.cue for o, of in out):
            continue
        out.append((h, f))
    return out


def _dedupe_persons(
    items: list[tuple[_Hit | None, int, int, PersonFinding]],
) -> tuple[PersonFinding, ...]:
    items = sorted(items, key=lambda x: (x[1], -(x[2] - x[1])))
    out: list[tuple[int, int, PersonFinding]] = []
    for _, s, e, f in items:
        if any(os <= s and e <= oe and of.cue == f.cue for os, oe, of in out):
            continue
        out.append((s, e, f))
    return tuple(f for _, _, f in out)


def _display(nt: NormalisedText, words: Sequence[Token]) -> str:
    """The normalised text with leetspeak decoded in place, for explanations and logs."""
    text = nt.text
    parts: list[str] = []
    pos = 0
    for w in words:
        if w.forms and w.forms[0] != w.text and len(w.forms[0]) == len(w.text):
            parts.append(text[pos : w.start])
            parts.append(w.forms[0])
            pos = w.end
    parts.append(text[pos:])
    return "".join(parts)


# --- process-wide analyser -------------------------------------------------------------

_DEFAULT: PromptAnalyser | None = None
_DEFAULT_LOCK = threading.Lock()


def default_analyser() -> PromptAnalyser:
    """The process-wide analyser, built on first use from every packaged lexicon."""
    global _DEFAULT
    if _DEFAULT is None:
        with _DEFAULT_LOCK:
            if _DEFAULT is None:
                _DEFAULT = PromptAnalyser()
    return _DEFAULT


def analyse_prompt(prompt: str) -> PromptFindings:
    """Analyse ``prompt`` with the process-wide analyser (lexicons loaded once)."""
    return default_analyser().analyse(prompt)


__all__ = [
    "LEXICON_DIR",
    "Lexicon",
    "LexiconError",
    "PromptAnalyser",
    "analyse_prompt",
    "default_analyser",
    "load_lexicon",
    "load_lexicons",
]



def _required_literal(pattern: str) -> str:
    """The longest run of literal characters every match of ``pattern`` must contain,
    or "" when none can be read off (the pattern then always runs). Uses the standard
    library's regex parser; should it change, patterns simply run unfiltered."""
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser as parser  # type: ignore[attr-defined]

        items = list(parser.parse(pattern))
    except Exception:  # noqa: BLE001 - a private API: fall back to no filter
        return ""
    best, run = "", ""
    for op, arg in items:
        if op is c.LITERAL:
            run += chr(arg)
            continue
        if op is c.AT:  # \b, ^, $: zero-width, the run goes on
            continue
        best, run = max(best, run, key=len), ""
    best = max(best, run, key=len)
    return best if len(best) >= 2 else ""
