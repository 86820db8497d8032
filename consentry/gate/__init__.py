"""The screening service. ``Gate`` is where every request is decided."""

from consentry.gate.errors import InvalidRequest
from consentry.gate.service import MAX_IMAGES, MAX_PROMPT_CHARS, Gate, Recording
from consentry.gate.verdict import AccountState, Verdict

__all__ = ["MAX_IMAGES", "MAX_PROMPT_CHARS", "AccountState", "Gate", "InvalidRequest", "Recording",
           "Verdict"]
