"""Text normalisation for prompt analysis: undo the usual evasions, keep an offset map.

``normalise`` folds a prompt character by character (zero-width characters dropped,
emoji spelled out as words, Unicode compatibility forms, homoglyphs, case, Latin
diacritics, non-ASCII digits) and remembers, for every character of the result, which
stretch of the original prompt it came from, so that a match can always be shown to the
user as the text they typed. ``tokenise`` then cuts the result into words and adds the
spellings an evader hides behind: leetspeak (``nak3d``, ``b!k!n!``, ``$ex``) and letters
spread out with spaces or punctuation (``s t r i p``, ``n-u-d-e``, ``n.u.d.e``).

Everything here is language-neutral; lexicon-aware repairs (collapsed repeats, typos)
live in ``prompt.py`` because they need the lexicon.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

# Invisible characters used to break words apart ("nu\u200bde"), plus emoji modifiers
# that carry no meaning for us (variation selectors, skin tones, tag characters).
_INVISIBLE = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B, 0x200C,
     0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2061,
     0x2062, 0x2063, 0x2064, 0x206A, 0x206B, 0x206C, 0x206D, 0x206E, 0x206F, 0x3164,
     0xFEFF, 0xFFA0, 0x20E3,
     # Control characters other than tab and line breaks ("bi\x00kini").
     *range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), *range(0x7F, 0xA0),
     *range(0xFE00, 0xFE10),  # variation selectors
     *range(0x1F3FB, 0x1F400),  # skin tones
     *range(0xE0000, 0xE0080),  # tag characters
     *range(0xE0100, 0xE01F0)]  # variation selectors supplement
)

_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# Emoji that stand for a word in abuse prompts. Spelled out in English; the English
# lexicon gives the words their meaning.
EMOJI_WORDS: dict[str, str] = {
    "👙": "bikini",
    "🩱": "swimsuit",
    "🩲": "briefs",
    "👗": "dress",
    "👚": "blouse",
    "👕": "shirt",
    "👔": "shirt",
    "🎽": "tank top",
    "👖": "jeans",
    "🩳": "shorts",
    "🥻": "sari",
    "👘": "kimono",
    "🧥": "coat",
    "🧦": "socks",
    "👠": "heels",
    "👡": "sandals",
    "👢": "boots",
    "👒": "hat",
    "🎩": "hat",
    "🧢": "cap",
    "👓": "glasses",
    "🕶": "sunglasses",
    "🧣": "scarf",
    "🧤": "gloves",
    "🎒": "backpack",
    "🍑": "ass",
    "🍆": "dick",
    "💦": "cum",
    "👅": "licking",
    "🔞": "nsfw",
    "🍒": "boobs",
    "🍈": "boobs",
    "🫦": "seductive",
    "🥵": "horny",
    "😈": "naughty",
    "💋": "kiss",
    "🛏": "bed",
    "🚿": "shower",
    "🛁": "bath",
    "🌶": "spicy",
    "🚫": "no",
    "❌": "no",
    "👶": "baby",
    "🧒": "child",
    "👧": "little girl",
    "👦": "little boy",
    "🚸": "children",
    "🏫": "school",
}

# Latin lookalikes in other scripts (and back). Keys are exact (case-sensitive)
# characters; mapping happens before case folding so that capitals map too.
_CYRILLIC_TO_LATIN = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "һ": "h", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "Ё": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
    "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X", "І": "I", "Ї": "I", "Ј": "J",
    "Ѕ": "S", "Ԁ": "D", "Һ": "H", "Ԛ": "Q", "Ԝ": "W", "Ӏ": "I",
}
_GREEK_TO_LATIN = {
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ω": "w",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "Ϲ": "C",
}
_LATIN_TO_CYRILLIC = {
    "a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "y": "у", "x": "х", "i": "і",
    "k": "к", "m": "м", "h": "н", "t": "т", "b": "в",
    "A": "А", "B": "В", "E": "Е", "K": "К", "M": "М", "H": "Н", "O": "О", "P": "Р",
    "C": "С", "T": "Т", "X": "Х", "Y": "У", "I": "І",
}
_LATIN_TO_GREEK = {v: k for k, v in _GREEK_TO_LATIN.items() if len(v) == 1}
# Lower-case lookalikes, for reading a word typed wholly in lookalike letters.
_LOOKALIKE_LOWER = {
    k: v.lower() for k, v in {**_CYRILLIC_TO_LATIN, **_GREEK_TO_LATIN}.items() if k.islower()
}

# Letters with no Unicode decomposition that people nonetheless read as plain Latin.
_LATIN_EXTRA_FOLD = {
    "ł": "l", "đ": "d", "ø": "o", "œ": "oe", "æ": "ae", "ð": "d", "þ": "th",
    "ı": "i", "ħ": "h", "ŧ": "t", "ƒ": "f", "ſ": "s", "ß": "ss",
}

# Leetspeak: digits and symbols that stand for letters inside a word.
_LEET = {
    "0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
    "@": "a", "$": "s", "!": "i", "|": "l", "€": "e", "£": "e", "¡": "i",
}
_LEET_SYMBOLS = frozenset("@$!|€£¡")
_LEET_ALT = str.maketrans({"1": "l", "|": "i", "!": "l"})

# Separators that may sit between spread-out letters: "s t r i p", "n-u-d-e", "n.u.d.e".
_SPREAD_SEPARATORS = frozenset(" -._*·/~+,'")


def _script(ch: str) -> str:
    """Coarse script of a letter: 'latin', 'cyrillic', 'greek' or 'other'."""
    o = ord(ch)
    if o < 0x250 or 0x1E00 <= o < 0x1F00 or 0x2C60 <= o < 0x2C80 or 0xA720 <= o < 0xA800:
        return "latin"
    if 0x400 <= o < 0x530 or 0x1C80 <= o < 0x1C90 or 0x2DE0 <= o < 0x2E00 or 0xA640 <= o < 0xA6A0:
        return "cyrillic"
    if 0x370 <= o < 0x400 or 0x1F00 <= o < 0x2000:
        return "greek"
    if ch == "ɡ":
        return "latin"
    return "other"


# Scripts written without spaces: their characters never join a spaced word.
def _is_unspaced(ch: str) -> bool:
    o = ord(ch)
    return (
        0x0E00 <= o < 0x0F00  # Thai, Lao
        or 0x1000 <= o < 0x10A0  # Myanmar
        or 0x1780 <= o < 0x1800  # Khmer
        or 0x2E80 <= o < 0xA000  # CJK radicals .. CJK unified, kana, bopomofo
        or 0xF900 <= o < 0xFB00  # CJK compatibility
        or 0xFF66 <= o < 0xFFA0  # halfwidth katakana
        or 0x20000 <= o < 0x32000  # CJK extensions
    )


@lru_cache(maxsize=8192)
def _fold_char(ch: str) -> str:
    """Case, Latin diacritics and digits of one (already NFKC) character."""
    if ch.isascii():
        return ch.lower()
    cat = unicodedata.category(ch)
    if cat == "Nd":
        return str(unicodedata.decimal(ch, 0))
    if cat == "Mn":
        # Arabic and Hebrew vowel points are optional in writing: drop them so that
        # pointed and unpointed spellings meet. Other scripts' marks are letters.
        o = ord(ch)
        if 0x0591 <= o <= 0x05C7 or 0x064B <= o <= 0x065F or o == 0x0670:
            return ""
        return ch
    low = ch.casefold()
    out = []
    for c in low:
        if _script(c) in ("latin", "greek") and not c.isascii():
            if c in _LATIN_EXTRA_FOLD:
                out.append(_LATIN_EXTRA_FOLD[c])
                continue
            base = "".join(
                d for d in unicodedata.normalize("NFD", c) if unicodedata.category(d) != "Mn"
            )
            out.append(base or c)
        else:
            out.append(c)
    return "".join(out)


@lru_cache(maxsize=8192)
def _nfkc(ch: str) -> str:
    return unicodedata.normalize("NFKC", ch)


@dataclass(frozen=True, slots=True)
class NormalisedText:
    """A folded prompt and, for each of its characters, where it came from."""

    original: str
    text: str
    starts: tuple[int, ...]  # original start offset of each character of ``text``
    ends: tuple[int, ...]  # original end offset of each character of ``text``

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Original offsets of ``text[start:end]`` (end exclusive)."""
        if not self.text or start >= end:
            pos = self.starts[start] if start < len(self.starts) else len(self.original)
            return pos, pos
        return self.starts[start], self.ends[end - 1]


def _homoglyphs(chars: list[str]) -> None:
    """Within each word, turn lookalike letters into the script most of the word uses.

    ``nаkеd`` with Cyrillic а and е becomes Latin; ``прuвет`` with a Latin u stays Cyrillic
    apart from mappable lookalikes. A word written wholly in one script is left alone, so
    genuine Russian or Greek is never touched.
    """
    n = len(chars)
    i = 0
    while i < n:
        if not chars[i].isalpha():
            i += 1
            continue
        j = i
        counts = {"latin": 0, "cyrillic": 0, "greek": 0, "other": 0}
        while j < n and (chars[j].isalpha() or chars[j] in "0123456789"):
            if chars[j].isalpha():
                counts[_script(chars[j])] += 1
            j += 1
        mixed = sum(1 for k in ("latin", "cyrillic", "greek") if counts[k]) > 1
        if mixed:
            lat, cyr, grk = counts["latin"], counts["cyrillic"], counts["greek"]
            # A word whose every letter could be Latin is Latin ("ВІКІNІ"): a genuine
            # Cyrillic or Greek word has letters with no Latin twin.
            all_latin_like = all(
                _script(c) == "latin" or c in _CYRILLIC_TO_LATIN or c in _GREEK_TO_LATIN
                for c in chars[i:j]
                if c.isalpha()
            )
            if all_latin_like or (lat >= cyr and lat >= grk):
                table = {**_CYRILLIC_TO_LATIN, **_GREEK_TO_LATIN}
            elif cyr >= grk:
                table = _LATIN_TO_CYRILLIC
            else:
                table = _LATIN_TO_GREEK
            for k in range(i, j):
                chars[k] = table.get(chars[k], chars[k])
        i = j


def normalise(prompt: str) -> NormalisedText:
    """Fold ``prompt`` for matching, keeping a map back to the original offsets."""
    if prompt.isascii() and not _ASCII_CONTROL.search(prompt):
        # Fast path: nothing to fold but case. Offsets are the identity.
        n = len(prompt)
        return NormalisedText(prompt, prompt.lower(), tuple(range(n)), tuple(range(1, n + 1)))

    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for i, ch in enumerate(prompt):
        o = ord(ch)
        if o in _INVISIBLE:
            continue
        word = EMOJI_WORDS.get(ch)
        if word is not None:
            for c in f" {word} ":
                chars.append(c)
                starts.append(i)
                ends.append(i + 1)
            continue
        if unicodedata.category(ch) == "So" and o >= 0x2000:
            # Other pictographs carry no word; a space keeps neighbours apart.
            chars.append(" ")
            starts.append(i)
            ends.append(i + 1)
            continue
        for c in _nfkc(ch):
            chars.append(c)
            starts.append(i)
            ends.append(i + 1)
    _homoglyphs(chars)

    out: list[str] = []
    out_starts: list[int] = []
    out_ends: list[int] = []
    prev_latin = False
    for c, s, e in zip(chars, starts, ends, strict=True):
        if unicodedata.category(c) == "Mn" and prev_latin:
            continue  # a combining accent on a Latin letter: fold it away
        folded = _fold_char(c)
        for f in folded:
            out.append(f)
            out_starts.append(s)
            out_ends.append(e)
        if folded:
            prev_latin = _script(folded[-1]) == "latin" and folded[-1].isalpha()
    return NormalisedText(prompt, "".join(out), tuple(out_starts), tuple(out_ends))


# --- tokens -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """A word of the normalised text, or several spread-out letters read as one word."""

    start: int  # offsets in the normalised text
    end: int
    text: str  # normalised text of the token, before leetspeak decoding
    forms: tuple[str, ...]  # spellings to match: decoded leetspeak first
    first: int  # index of the first real token it covers
    last: int  # index of the last real token it covers (== first for a real token)
    kind: str = "word"  # "word", "handle" (@name) or "spread" (s t r i p)


# Gaps between tokens, by how strongly they separate: 0 space, 1 comma, 2 sentence end.
GAP_SPACE, GAP_COMMA, GAP_STOP = 0, 1, 2


@lru_cache(maxsize=16384)
def word_forms(raw: str) -> tuple[str, ...]:
    """Spellings of one raw token: leetspeak decoded (``nak3d`` -> ``naked``) and kept.

    A token that starts with digits (``16yo``, ``7th``, ``3d``) is a number, not leet.
    """
    if raw.isalpha():
        if not raw.isascii() and all(c in _LOOKALIKE_LOWER for c in raw):
            # Wholly Cyrillic/Greek lookalikes ("вікіні"): also read it as Latin.
            return (raw, "".join(_LOOKALIKE_LOWER[c] for c in raw))
        return (raw,)
    if raw.isdigit():
        return (raw,)
    forms: list[str] = []
    if raw[0].isdigit():
        forms.append(raw)
        letters = "".join(c for c in raw if c.isalpha())
        if letters:
            forms.append(letters)
        return tuple(dict.fromkeys(forms))
    decoded = "".join(_LEET.get(c, c) for c in raw)
    forms.append(decoded)
    alt = "".join(_LEET.get(c, c) for c in raw.translate(_LEET_ALT))
    forms.append(alt)
    letters = "".join(c for c in raw if c.isalpha())
    if letters:
        forms.append(letters)
    forms.append(raw)
    return tuple(dict.fromkeys(f for f in forms if f))


def _char_class(ch: str) -> str:
    """'w' word character, 's' leet symbol, 'u' unspaced-script character, ' ' other."""
    if ch.isalnum():
        return "u" if _is_unspaced(ch) else "w"
    cat = unicodedata.category(ch)
    if cat[0] == "M":
        return "u" if _is_unspaced(ch) else "w"
    if ch in _LEET_SYMBOLS:
        return "s"
    return " "


_CLASS_CACHE: dict[str, str] = {}


def _cls(ch: str) -> str:
    c = _CLASS_CACHE.get(ch)
    if c is None:
        c = _char_class(ch)
        if len(_CLASS_CACHE) < 65536:
            _CLASS_CACHE[ch] = c
    return c


def _gap_strength(between: str) -> int:
    if any(c in ".!?;\n\r…。！？；" for c in between):
        return GAP_STOP
    if any(c in ",:()[]{}\"“”«»、，：" for c in between):
        return GAP_COMMA
    return GAP_SPACE


_ASCII_TOKEN = re.compile(
    r"(?<![A-Za-z0-9@$!|])(@[A-Za-z0-9_](?:[A-Za-z0-9_]|\.(?=[A-Za-z0-9]))*)|[A-Za-z0-9@$!|]+"
)


@dataclass(frozen=True, slots=True)
class Tokens:
    """The words of a normalised prompt."""

    words: tuple[Token, ...]  # real tokens, in order
    spread: tuple[Token, ...]  # extra tokens read across several real ones
    gaps: tuple[int, ...]  # gaps[i]: strength of the separation before words[i]


def tokenise(nt: NormalisedText) -> Tokens:
    """Cut normalised text into words; add spread-out letters read as single words."""
    text = nt.text
    n = len(text)
    raw_spans: list[tuple[int, int, str]] = []
    i = n if text.isascii() else 0
    if i:  # ASCII: one regex pass does what the loop below does
        for m in _ASCII_TOKEN.finditer(text):
            raw_spans.append((m.start(), m.end(), "handle" if m.group(1) else "word"))
    while i < n:
        ch = text[i]
        c = _cls(ch)
        if (
            ch == "@"
            and i + 1 < n
            and (_cls(text[i + 1]) == "w" or text[i + 1] == "_")
            and (i == 0 or _cls(text[i - 1]) not in ("w", "s"))
        ):
            # An @handle (@jenny_runs_2020, @anna.k): a person cue, never leetspeak.
            j = i + 1
            while j < n and (
                _cls(text[j]) == "w"
                or text[j] == "_"
                or (text[j] == "." and j + 1 < n and _cls(text[j + 1]) == "w")
            ):
                j += 1
            raw_spans.append((i, j, "handle"))
            i = j
            continue
        if c not in ("w", "s"):
            i += 1
            continue
        j = i
        while j < n and _cls(text[j]) in ("w", "s"):
            j += 1
        raw_spans.append((i, j, "word"))
        i = j

    words: list[Token] = []
    gaps: list[int] = []
    prev_end = 0
    for s, e, kind in raw_spans:
        piece = text[s:e]
        if kind == "handle":
            gaps.append(_gap_strength(text[prev_end:s]) if words else GAP_SPACE)
            words.append(Token(s, e, piece, (), len(words), len(words), "handle"))
            prev_end = e
            continue
        # Leet symbols at the edges are punctuation unless the word uses the same symbol
        # inside ("b!k!n!" keeps its last "!", "nak3d!!" and "nsfw!" lose theirs).
        core = piece
        while core and _cls(core[-1]) == "s":
            core = core[:-1]
        tail = piece[len(core) :]
        if tail and not (len(tail) == 1 and tail in core[1:]):
            piece = core
            e -= len(tail)
        while piece and _cls(piece[0]) == "s" and not (piece[0] == "$" and len(piece) > 1):
            piece = piece[1:]
            s += 1
        if not piece or not any(_cls(ch) == "w" for ch in piece):
            continue
        gaps.append(_gap_strength(text[prev_end:s]) if words else GAP_SPACE)
        words.append(Token(s, e, piece, word_forms(piece), len(words), len(words), kind))
        prev_end = e

    spread = _spread_letters(text, words)
    return Tokens(tuple(words), tuple(spread), tuple(gaps))


def _spread_letters(text: str, words: list[Token]) -> list[Token]:
    """Runs of single characters joined into one word: 's t r i p', 'n-u-d-e'."""
    out: list[Token] = []
    n = len(words)
    i = 0
    while i < n:
        if len(words[i].text) != 1 or words[i].kind != "word":
            i += 1
            continue
        j = i + 1
        while (
            j < n
            and len(words[j].text) == 1
            and words[j].kind == "word"
            and 1 <= words[j].start - words[j - 1].end <= 2
            and all(c in _SPREAD_SEPARATORS for c in text[words[j - 1].end : words[j].start])
        ):
            j += 1
        if j - i >= 3:
            for a in (i, i + 1):
                # "a b i k i n i": the article may have been swept into the run.
                if a > i and words[i].text not in ("a", "i"):
                    break
                if j - a < 3:
                    break
                raw = "".join(w.text for w in words[a:j])
                out.append(
                    Token(words[a].start, words[j - 1].end, raw, word_forms(raw), a, j - 1,
                          "spread")
                )
        i = max(j, i + 1)
    return out


def fold_phrase(text: str) -> str:
    """Fold lexicon text exactly as prompts are folded (no offsets kept)."""
    return normalise(text).text


def fold_regex(pattern: str) -> str:
    """Fold the literal letters of a regular expression, leaving escapes (``\\D``) intact."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if ch.isascii():
            out.append(ch.lower())
        else:
            out.append("".join(_fold_char(c) for c in _nfkc(ch)))
        i += 1
    return "".join(out)
