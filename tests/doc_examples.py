"""The shell examples of the Markdown docs, as a test runs them: fenced ``sh`` blocks split
into commands, each with what the text around it promises (an exit status, an HTTP
status, the shape of the JSON answer). Pure: no I/O.

Conventions the docs follow (and a reader can see):

- ``<!-- docs-test: skip (why) -->`` on the line before a fence: the block is not run.
- A command continues while a quote or ``$(`` is open or its line ends with ``\\``.
- Comment lines right after a command (or its inline comment) describe its answer:
  ``# {...}`` a 2xx JSON answer; ``# 409 {...}`` an HTTP status and JSON answer;
  ``# exit 4: ...`` the exit status of a command documented to fail. Text after the
  JSON is prose. A ```json block right after a ``sh`` block is its last command's answer.
- A shown answer lists keys with or without values (``{"image", "pdq"}``) and ``...``
  for what is left out. Every key shown must be in the real answer; values are compared
  only for status-like keys (a case's ``status``, a verdict's ``decision``...).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SKIP_MARKER = re.compile(r"^<!--\s*docs-test:\s*skip\s*\((?P<why>[^)]*)\)\s*-->\s*$")
STATUS_KEYS = frozenset({"status", "decision", "complete", "code", "clause", "category"})
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
_EXIT = re.compile(r"^exit (?P<code>\d+)\b")
_HTTP = re.compile(r"^(?P<status>[1-5]\d\d)\b\s*")


class Elided:
    """``...`` in a shown answer: anything."""

    def __repr__(self) -> str:
        return "..."


ELIDED = Elided()


@dataclass(frozen=True)
class Sketch:
    """A JSON answer as the docs show it: dicts of the keys shown (``ELIDED`` where only
    the key is shown), lists of the items shown."""

    value: Any


@dataclass(frozen=True)
class Command:
    text: str
    line: int  # where it starts in the Markdown file
    notes: tuple[str, ...]  # its inline comment and the comment lines after it
    exit_code: int = 0
    http_status: int | None = None
    answer: Sketch | None = None

    def where(self, path: Path) -> str:
        return f"{path.name}:{self.line}"


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    body: str
    skip: str | None  # the reason given, when the block is marked to be skipped
    answer: str | None  # a ```json block right after it


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    lines = markdown.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP_MARKER.match(before.strip())
        out.append(Block(start + 2, fence["lang"], "\n".join(body) + "\n",
                         skip["why"].strip() if skip else None, None))
    # A json block that directly follows a sh block shows that block's last answer.
    for n, block in enumerate(out[:-1]):
        nxt = out[n + 1]
        after_fence = block.line + block.body.count("\n")  # 0-based index after it
        gap = lines[after_fence:nxt.line - 2]
        if block.language == "sh" and nxt.language == "json" and not any(
                g.strip() for g in gap):
            out[n] = Block(block.line, block.language, block.body, block.skip, nxt.body)
    return out


def commands(block: Block) -> list[Command]:
    """The commands of a ``sh`` block with what their comments promise."""
    found: list[tuple[str, int, str | None, list[str]]] = []  # text, line, inline, after
    pending: list[str] = []
    inline: str | None = None
    first = 0
    notes_open = False  # comment lines still describe the last command
    stack = ["top"]
    for n, line in enumerate(block.body.splitlines()):
        if stack == ["top"] and not pending:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                if stripped and notes_open:
                    found[-1][3].append(stripped.removeprefix("#").strip())
                notes_open = notes_open and bool(stripped)
                continue
            first, inline = block.line + n, None
        code, comment = _scan(line, stack)
        inline = comment if comment is not None else inline
        pending.append(line)
        if stack == ["top"] and not code.rstrip().endswith("\\"):
            found.append(("\n".join(pending), first, inline, []))
            pending, notes_open = [], True
    if pending:
        raise ValueError(f"line {first}: unfinished command (an open quote?)")
    out = []
    for n, (text, line, inline_note, after) in enumerate(found):
        shown = ["\n".join(after)]
        if n == len(found) - 1 and block.answer is not None:
            shown.append(block.answer)
        out.append(_annotated(text, line, (*shown, inline_note or "")))
    return out


def _annotated(text: str, line: int, notes: tuple[str, ...]) -> Command:
    """What the first note that promises anything says: the comment lines after the
    command, then a json block after the fence, then the inline comment."""
    exit_code, status, answer = 0, None, None
    for note in (n.strip() for n in notes):
        if m := _EXIT.match(note):
            exit_code = int(m["code"])
            break
        m = _HTTP.match(note)
        rest = note[m.end():] if m else note
        if rest.startswith(("{", "[")):
            answer = Sketch(parse_sketch(rest))
            status = int(m["status"]) if m else None
            break
        if m:
            status = int(m["status"])
            break
    return Command(text, line, tuple(n for n in notes if n), exit_code, status, answer)


def _scan(line: str, stack: list[str]) -> tuple[str, str | None]:
    """Track quotes and ``$(`` across ``line``; returns the code and its inline comment
    (``#`` starting a word outside quotes)."""
    i = 0
    while i < len(line):
        ch, top = line[i], stack[-1]
        if top == "'":
            if ch == "'":
                stack.pop()
        elif top == '"':
            if ch == "\\":
                i += 1
            elif ch == '"':
                stack.pop()
            elif line.startswith("$(", i):
                stack.append("$(")
                i += 1
        else:
            if ch == "\\":
                i += 1
            elif ch in "'\"":
                stack.append(ch)
            elif line.startswith("$(", i):
                stack.append("$(")
                i += 1
            elif ch == ")" and top == "$(":
                stack.pop()
            elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
                return line[:i], line[i + 1:].strip()
        i += 1
    return line, None


# -- shown answers --------------------------------------------------------------------


def parse_sketch(text: str) -> Any:
    """The first JSON-like value in ``text`` (anything after it is prose): JSON, plus bare
    keys in objects (``{"image", "pdq"}``) and ``...`` anywhere."""
    value, _ = _Parser(text).value()
    return value


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def _skip(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\r\n":
            self.i += 1

    def _peek(self, s: str) -> bool:
        self._skip()
        return self.text.startswith(s, self.i)

    def _eat(self, s: str) -> None:
        if not self._peek(s):
            raise ValueError(f"expected {s!r} at {self.text[self.i:self.i + 30]!r} "
                             f"in {self.text!r}")
        self.i += len(s)

    def value(self) -> tuple[Any, int]:
        self._skip()
        if self._peek("..."):
            self.i += 3
            return ELIDED, self.i
        if self._peek("{"):
            return self._object(), self.i
        if self._peek("["):
            return self._array(), self.i
        decoder = json.JSONDecoder()
        value, end = decoder.raw_decode(self.text, self.i)
        self.i = end
        return value, end

    def _object(self) -> dict[str, Any]:
        self._eat("{")
        out: dict[str, Any] = {}
        while not self._peek("}"):
            if self._peek("..."):
                self.i += 3
            else:
                key, _ = self.value()
                if not isinstance(key, str):
                    raise ValueError(f"object key {key!r} is not a string in {self.text!r}")
                out[key] = ELIDED
                if self._peek(":"):
                    self.i += 1
                    out[key], _ = self.value()
            if self._peek(","):
                self.i += 1
        self._eat("}")
        return out

    def _array(self) -> list[Any]:
        self._eat("[")
        out = []
        while not self._peek("]"):
            item, _ = self.value()
            if item is not ELIDED:
                out.append(item)
            if self._peek(","):
                self.i += 1
        self._eat("]")
        return out


def mismatches(shown: Any, real: Any, where: str = "answer") -> list[str]:
    """How a real JSON answer falls short of the one shown (empty: it matches)."""
    key = where.rsplit(".", 1)[-1].split("[", 1)[0]
    if shown is ELIDED:
        return []
    if isinstance(shown, dict):
        if not isinstance(real, dict):
            return [f"{where}: shown an object, got {_short(real)}"]
        out = []
        for k, v in shown.items():
            if k not in real:
                out.append(f"{where}: no key {k!r} (keys: {sorted(real)})")
            else:
                out += mismatches(v, real[k], f"{where}.{k}")
        return out
    if isinstance(shown, list):
        if not isinstance(real, list):
            return [f"{where}: shown a list, got {_short(real)}"]
        out = []
        for n, item in enumerate(shown):
            compared = isinstance(item, dict | list) or key in STATUS_KEYS
            if compared and not any(not mismatches(item, r, f"{where}[{n}]") for r in real):
                out.append(f"{where}: nothing like shown item {_short(item)} in "
                           f"{_short(real)}")
        return out
    if key in STATUS_KEYS and not (isinstance(shown, str) and "..." in shown) \
            and shown != real:
        return [f"{where}: shown {shown!r}, got {real!r}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, Elided) else "..."
    return text if len(text) < 300 else text[:300] + "..."


def answers(stdout: str) -> list[Any]:
    """A command's output as JSON values: one document, or one per line."""
    text = stdout.strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(json.loads(line))  # not JSON: the caller reports it
    return out
