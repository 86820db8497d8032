"""Takedown requests and cases as the API and the public pages exchange them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool

from consentry.cases.case import CaseStatus, CaseView, Due
from consentry.cases.intake import (
    ContentLocator,
    Declaration,
    Regime,
    Relationship,
    TakedownSubmission,
)
from consentry.cases.takedowns import MAX_IMAGES, MAX_LOCATORS, MAX_TEXT
from consentry.reporting.sla import TakedownSla


class TakedownIn(BaseModel):
    """A takedown request. Identify the content by content id, URL, image (base64) or
    hashes computed on the requester's device (PDQ and/or MD5, hex)."""

    regime: Regime
    content_ids: list[str] = Field(default_factory=list, max_length=MAX_LOCATORS)
    urls: list[str] = Field(default_factory=list, max_length=MAX_LOCATORS)
    pdq_hashes: list[str] = Field(default_factory=list, max_length=MAX_LOCATORS)
    md5_hashes: list[str] = Field(default_factory=list, max_length=MAX_LOCATORS)
    images: list[str] = Field(default_factory=list, max_length=MAX_IMAGES,
                              description="base64 image bytes")
    requester_name: str = Field(default="", max_length=MAX_TEXT)
    email: str = Field(default="", max_length=MAX_TEXT)
    other_contact: str = Field(default="", max_length=MAX_TEXT)
    signature: str = Field(default="", max_length=MAX_TEXT,
                           description="typed full name as an electronic signature")
    relationship: Relationship | None = Field(
        default=None, description="self (I am the person shown) or authorised_representative")
    declarations: list[Declaration] = Field(
        default_factory=list, description="statements the requester makes: not_consensual, "
        "intimate, person_or_representative, good_faith, truth")
    statement: str = Field(default="", max_length=MAX_TEXT)
    csam: StrictBool = Field(default=False, description="DSA notice about child sexual "
                                                        "abuse material")

    def submission(self, image_count: int = 0) -> TakedownSubmission:
        clean = [u.strip() for u in self.urls if u.strip()]
        return TakedownSubmission(
            regime=self.regime,
            locator=ContentLocator(
                content_ids=tuple(c.strip() for c in self.content_ids if c.strip()),
                urls=tuple(clean), pdq_hashes=tuple(h.strip() for h in self.pdq_hashes),
                md5_hashes=tuple(h.strip() for h in self.md5_hashes), images=image_count),
            requester_name=self.requester_name.strip(), email=self.email.strip(),
            other_contact=self.other_contact.strip(), signature=self.signature.strip(),
            relationship=self.relationship, declarations=frozenset(self.declarations),
            statement=self.statement.strip(), csam=self.csam)


class MissingOut(BaseModel):
    field: str
    why: str


class CaseOut(BaseModel):
    """What the requester sees: never an uploader, a content id or another case."""

    case: str = Field(description="the case number, e.g. TD-7K4Q9XWM2A")
    regime: Regime
    status: CaseStatus
    received_at: datetime
    deadline: datetime = Field(description="48 hours from the first receipt")
    removed_at: datetime | None
    missing: list[MissingOut] = Field(description="what an incomplete request still needs")
    items_found: int
    items_removed: int = Field(description="items no longer on the service, including "
                                           "those already down before the request")
    already_removed: int
    copies_found: int = Field(description="items found by matching the image, not named")
    not_found: list[str] = Field(description="named links and ids we do not hold")

    @classmethod
    def of(cls, view: CaseView) -> CaseOut:
        return cls.model_validate(view.public())


class SubmittedOut(BaseModel):
    case: CaseOut
    pin: str = Field(description="shown once: keep it to check the status page")
    complete: bool


class LocatedOut(BaseModel):
    content_id: str
    account_id: str | None
    distance: int
    identified: bool = Field(description="named in the request (else found as a copy)")


class EventOut(BaseModel):
    kind: str
    at: datetime
    actor: str
    automated: bool
    details: dict[str, Any]


class CaseRecordOut(CaseOut):
    """The case worker's view: everything, history included."""

    merged_into: str | None
    already_removed_ids: list[str]
    removed_here: list[str] = Field(description="removed because of this case's callback")
    escalated: bool
    located: list[LocatedOut]
    removed: list[str]
    failed: list[str]
    time_to_removal_s: float | None
    events: list[EventOut]
    due: Due | None = None
    time_left_s: float | None = None

    @classmethod
    def of_record(cls, view: CaseView, now: datetime | None = None) -> CaseRecordOut:
        return cls.model_validate(view.to_dict(now))


class CaseListOut(BaseModel):
    due: Due
    cases: list[CaseRecordOut]
    sla: TakedownSla


class AppealIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_TEXT)


class RemoveIn(BaseModel):
    content_ids: list[str] = Field(default_factory=list, max_length=MAX_LOCATORS,
                                   description="more content to remove with the case")


class RejectIn(BaseModel):
    reasons: list[str] = Field(min_length=1, max_length=20,
                               description="each shown to the requester")


class ReverseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=MAX_TEXT,
                        description="why the removal was wrong; sent to everyone concerned")
