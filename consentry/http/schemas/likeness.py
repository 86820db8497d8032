"""A likeness registry entry as the API shows it to the platform: one account's own
entry, never the embeddings and never anyone else's."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class LikenessSettings(BaseModel):
    never_sexualise: Literal[True] = Field(
        True, description="always on: sexualising requests or outputs showing the face are "
                          "refused (II-1)")
    no_edits: bool = Field(description="edits of photos showing the face by other accounts "
                                       "are refused (LR-1)")


class LikenessView(BaseModel):
    id: str
    account: str
    status: Literal["active", "held", "withdrawn"] = Field(
        description="held: the face is enrolled under another account; a reviewer decides")
    settings: LikenessSettings
    photo_count: int
    created_at: datetime
    updated_at: datetime
    withdrawn_at: datetime | None


class LikenessChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    no_edits: StrictBool
