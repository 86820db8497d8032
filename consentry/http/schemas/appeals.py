"""Appeals as the API and the public page exchange them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from consentry.cases.appeals import MAX_REASON


class AppealIn(BaseModel):
    """An appeal of a restriction: the token from its statement of reasons proves
    standing; no account needed."""

    token: str = Field(max_length=1000, description="the appeal token (ap_...) from the "
                                                    "decision or its statement of reasons")
    reason: str = Field(max_length=MAX_REASON, description="why the decision is wrong")
    contact: str | None = Field(default=None, max_length=320,
                                description="an email address to hear the outcome at "
                                            "(else the platform tells the account)")


class AppealOut(BaseModel):
    reference: str = Field(description="quote it when you write to us, e.g. RV-42")
    status: str = "filed"
    filed_at: datetime
