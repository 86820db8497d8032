"""Appeal tokens prove standing without an account: only the service can make one, and
one names exactly what it appeals."""

from __future__ import annotations

from consentry.enforcement.appeal_tokens import AppealRef, AppealSubject, AppealTokens


def test_a_token_names_what_it_appeals_and_cannot_be_forged_or_moved():
    tokens = AppealTokens(b"k" * 32)
    ref = AppealRef(AppealSubject.TAKEDOWN, "TD-7K4Q9XWM2A:user.with:colons")
    token = tokens.issue(ref)
    assert tokens.verify(token) == ref and tokens.issue(ref) == token  # stable on retry
    other = AppealRef(AppealSubject.CHECK, "chk_other")
    _, signature = token.split(".")
    forged = tokens.issue(other).split(".")[0] + "." + signature
    assert tokens.verify(forged) is None  # a signature belongs to its subject
    assert AppealTokens(b"x" * 32).verify(token) is None  # another service's key
    for junk in ("", "ap_", "ap_.x", "nonsense", token + "x", "ap_" + "A" * 2000):
        assert tokens.verify(junk) is None
