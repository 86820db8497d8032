"""Hash banks and their entries as the API exchanges them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from consentry.banks.registry import BankCategory, BankKind

MAX_TEXT = 200


class BankView(BaseModel):
    id: int
    name: str
    kind: BankKind
    category: BankCategory
    clause: str = Field(description="the policy clause a match in this bank is judged under")
    description: str
    created_at: datetime
    enabled: bool
    active_entries: int


class BankList(BaseModel):
    banks: list[BankView]


class EntryView(BaseModel):
    id: int
    bank: str
    source: str = Field(description="manual, gate, or the exchange it was imported from")
    external_id: str | None
    md5: str | None
    pdq: str | None
    quality: int | None = Field(description="PDQ quality 0-100; null for a bare hash")
    clause: str
    added_at: datetime
    status: str = Field(description="active | disabled | removed")
    takedown_case: str | None
    details: dict[str, Any]


class EntryPage(BaseModel):
    entries: list[EntryView]
    next_after: int | None = Field(
        description="pass as ?after= for the next page; null on the last page")


class CopyView(BaseModel):
    content_id: str
    kind: str
    account: str | None
    url: str | None
    md5: str
    pdq: str | None
    registered_at: datetime
    removed: bool
    distance: int | None


class SweepResult(BaseModel):
    bank: str
    entry: int
    copies: list[CopyView] = Field(description="registered content that is this image; "
                                               "take these down")


class BankCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-64 characters of a-z, 0-9, '_', '-', '.'")
    kind: BankKind
    category: BankCategory
    description: str = Field(default="", max_length=2000)


class EnabledChange(BaseModel):
    """``{"enabled": false}`` or ``{"enabled": true}``: a JSON boolean, nothing else."""

    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


class EntryAdd(BaseModel):
    """An image (base64) or bare hashes, never both."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(default=None, description="the image, base64")
    pdq: str | None = Field(default=None, description="PDQ hash, 64 hex characters")
    md5: str | None = Field(default=None, description="MD5 of the file, 32 hex characters")
    external_id: str | None = Field(default=None, max_length=MAX_TEXT)
    takedown_case: str | None = Field(default=None, max_length=MAX_TEXT)
    details: dict[str, Any] = Field(default_factory=dict)
