"""What makes a takedown request complete, per legal regime. Pure: no I/O.

An incomplete request is never dropped: the requester is told at once exactly what is
missing and why the regime asks for it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Regime(StrEnum):
    TAKE_IT_DOWN = "take_it_down"  # US TAKE IT DOWN Act, 47 U.S.C. 223a
    UK_INTIMATE_IMAGE = "uk_intimate_image"  # UK intimate image content report
    DSA_ART16 = "dsa_art16"  # EU Digital Services Act, Art. 16 notice


class Declaration(StrEnum):
    """Statements a requester can make by ticking a box on the form."""

    NOT_CONSENSUAL = "not_consensual"  # good-faith belief the depiction is not consensual
    INTIMATE = "intimate"  # the content is intimate
    PERSON_OR_REPRESENTATIVE = "person_or_representative"  # I am shown, or act for them
    GOOD_FAITH = "good_faith"
    TRUTH = "truth"  # the information is true (UK) / accurate and complete (DSA)


class Relationship(StrEnum):
    SELF = "self"
    AUTHORISED_REPRESENTATIVE = "authorised_representative"


@dataclass(frozen=True)
class ContentLocator:
    """How the requester points at the content; at least one way is needed."""

    content_ids: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    pdq_hashes: tuple[str, ...] = ()  # hashed on the requester's device
    md5_hashes: tuple[str, ...] = ()
    images: int = 0  # images uploaded with the request
    # Hashes of the uploaded images: the bytes themselves are never stored.
    image_md5s: tuple[str, ...] = ()
    image_pdqs: tuple[str, ...] = ()
    # Per image, every (variant, PDQ hex) pair a bank entry would index (crops included),
    # so that a case finished after a restart finds what the pixels would have found.
    image_variants: tuple[tuple[tuple[str, str], ...], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.content_ids or self.urls or self.pdq_hashes or self.md5_hashes
                    or self.images or self.image_md5s)


@dataclass(frozen=True)
class TakedownSubmission:
    regime: Regime
    locator: ContentLocator
    requester_name: str = ""
    email: str = ""
    other_contact: str = ""  # phone or postal address
    signature: str = ""  # typed full name as electronic signature
    relationship: Relationship | None = None
    declarations: frozenset[Declaration] = frozenset()
    statement: str = ""  # why the content is non-consensual / illegal
    csam: bool = False  # DSA: the notice concerns child sexual abuse material


@dataclass(frozen=True)
class Missing:
    field: str
    why: str  # what the regime requires, in plain language


@dataclass(frozen=True)
class Completeness:
    missing: tuple[Missing, ...] = field(default_factory=tuple)

    @property
    def complete(self) -> bool:
        return not self.missing


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PDQ = re.compile(r"^[0-9a-fA-F]{64}$")
_MD5 = re.compile(r"^[0-9a-fA-F]{32}$")


def check_completeness(s: TakedownSubmission) -> Completeness:
    """Everything the request's regime requires that it lacks (empty when complete)."""
    missing: list[Missing] = []

    def need(ok: bool, name: str, why: str) -> None:
        if not ok:
            missing.append(Missing(name, why))

    contact = bool(_EMAIL.match(s.email.strip())) or bool(s.other_contact.strip())
    need(not s.locator.empty, "content",
         "identify the content: a link, a content id, the image itself or its hashes")
    bad_hashes = [h for h in s.locator.pdq_hashes if not _PDQ.match(h)] + \
        [h for h in s.locator.md5_hashes if not _MD5.match(h)]
    need(not bad_hashes, "hashes",
         "hashes must be 64 hex characters (PDQ) or 32 hex characters (MD5)")

    if s.regime is Regime.TAKE_IT_DOWN:
        need(bool(s.signature.strip()), "signature",
             "a physical or electronic signature of the person shown or someone authorised "
             "to act for them (typing your full name is enough)")
        need(Declaration.NOT_CONSENSUAL in s.declarations and bool(s.statement.strip()),
             "statement", "a brief statement that you believe in good faith the image was "
             "shared without consent, with any information that helps us check it")
        need(contact, "contact", "an email address or other way to contact you")
    elif s.regime is Regime.UK_INTIMATE_IMAGE:
        for declaration, why in (
            (Declaration.INTIMATE, "a declaration that the content is intimate"),
            (Declaration.PERSON_OR_REPRESENTATIVE,
             "a declaration that you are the person shown or act on their behalf"),
            (Declaration.GOOD_FAITH, "a declaration that the report is made in good faith"),
            (Declaration.TRUTH, "a declaration that the information given is true"),
        ):
            need(declaration in s.declarations, f"declaration:{declaration.value}", why)
        need(s.relationship is not None, "relationship",
             "whether you are the person shown or acting for them")
        need(contact, "contact", "contact details so that we can tell you what we did")
    elif s.regime is Regime.DSA_ART16:
        need(bool(s.statement.strip()), "statement",
             "a sufficiently substantiated explanation of why the content is illegal")
        need(bool(s.locator.urls or s.locator.content_ids), "location",
             "the exact electronic location of the content, such as its URL")
        if not s.csam:  # Art. 16(2)(c): name and email may be left out for CSAM notices
            need(bool(s.requester_name.strip()), "name", "your name")
            need(bool(_EMAIL.match(s.email.strip())), "email", "your email address")
        need(Declaration.GOOD_FAITH in s.declarations and Declaration.TRUTH in s.declarations,
             "declaration:bona_fide", "a statement that you believe in good faith that the "
             "information in the notice is accurate and complete")
    return Completeness(tuple(missing))


def submission_to_dict(s: TakedownSubmission) -> dict[str, Any]:
    """The request as stored with its case (JSON)."""
    out = asdict(s)
    out["regime"] = s.regime.value
    out["relationship"] = s.relationship.value if s.relationship else None
    out["declarations"] = sorted(d.value for d in s.declarations)
    return out


def submission_from_dict(d: dict[str, Any]) -> TakedownSubmission:
    loc = d.get("locator", {})
    return TakedownSubmission(
        regime=Regime(d["regime"]),
        locator=ContentLocator(**{k: _tuples(v) for k, v in loc.items()}),
        requester_name=d.get("requester_name", ""), email=d.get("email", ""),
        other_contact=d.get("other_contact", ""), signature=d.get("signature", ""),
        relationship=Relationship(d["relationship"]) if d.get("relationship") else None,
        declarations=frozenset(Declaration(x) for x in d.get("declarations", [])),
        statement=d.get("statement", ""), csam=bool(d.get("csam", False)),
    )


def _tuples(value: Any) -> Any:
    """JSON lists back to the tuples the dataclasses hold, at any depth."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
