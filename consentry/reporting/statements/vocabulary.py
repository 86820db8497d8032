"""The EU DSA Transparency Database's vocabulary for statements of reasons, and how each
clause of our policy maps onto it.

Values are spelled exactly as the database's API documentation lists them
(https://transparency.dsa.ec.europa.eu/page/api-documentation, "Statement Attributes";
source: github.com/digital-services-act/transparency-database,
resources/markdown/en/api-documentation.md and app/Models/Statement.php). The database
refuses any other spelling with a 422, so they are constants, never built from strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# decision_visibility (an array), decision_account
CONTENT_REMOVED: Final = "DECISION_VISIBILITY_CONTENT_REMOVED"
CONTENT_DISABLED: Final = "DECISION_VISIBILITY_CONTENT_DISABLED"
ACCOUNT_SUSPENDED: Final = "DECISION_ACCOUNT_SUSPENDED"
ACCOUNT_TERMINATED: Final = "DECISION_ACCOUNT_TERMINATED"

# decision_ground
ILLEGAL: Final = "DECISION_GROUND_ILLEGAL_CONTENT"
INCOMPATIBLE: Final = "DECISION_GROUND_INCOMPATIBLE_CONTENT"

# content_type (an array)
TEXT: Final = "CONTENT_TYPE_TEXT"
IMAGE: Final = "CONTENT_TYPE_IMAGE"
SYNTHETIC_MEDIA: Final = "CONTENT_TYPE_SYNTHETIC_MEDIA"

# source_type
SOURCE_ARTICLE_16: Final = "SOURCE_ARTICLE_16"
SOURCE_OTHER_NOTIFICATION: Final = "SOURCE_TYPE_OTHER_NOTIFICATION"
SOURCE_VOLUNTARY: Final = "SOURCE_VOLUNTARY"

# automated_detection ("Yes" / "No") and automated_decision
YES: Final = "Yes"
NO: Final = "No"
FULLY_AUTOMATED: Final = "AUTOMATED_DECISION_FULLY"
PARTIALLY_AUTOMATED: Final = "AUTOMATED_DECISION_PARTIALLY"
NOT_AUTOMATED: Final = "AUTOMATED_DECISION_NOT_AUTOMATED"

# category
PROTECTION_OF_MINORS: Final = "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
CYBER_VIOLENCE: Final = "STATEMENT_CATEGORY_CYBER_VIOLENCE"
OTHER_VIOLATION_TC: Final = "STATEMENT_CATEGORY_OTHER_VIOLATION_TC"

# category_specification (an array of keywords)
CSAM: Final = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"
CSAM_DEEPFAKE: Final = "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL_DEEPFAKE"
NCII: Final = "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING"
NCII_DEEPFAKE: Final = "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"
ADULT_SEXUAL_MATERIAL: Final = "KEYWORD_ADULT_SEXUAL_MATERIAL"

# territorial_scope: the documentation's EU list plus Iceland, Liechtenstein and Norway
# (its EEA list). A restriction here applies wherever the platform is offered.
EU: Final = ("AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR",
             "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI",
             "SK")
EEA: Final = tuple(sorted((*EU, "IS", "LI", "NO")))

# The database's limits on free text (characters).
LEGAL_GROUND_MAX: Final = 500
EXPLANATION_MAX: Final = 2000
FACTS_MAX: Final = 5000
PUID_MAX: Final = 500


@dataclass(frozen=True)
class ClauseGround:
    """How one policy clause is stated to the database.

    ``ground`` is ILLEGAL where the content is illegal in every Member State (then
    ``basis`` names the law), else INCOMPATIBLE (``basis`` names our terms). Generated
    content (a refused generation or output) is reported with ``synthetic`` keywords, the
    rest with ``keywords``."""

    ground: str
    basis: str
    explanation: str
    category: str
    keywords: tuple[str, ...]
    synthetic: tuple[str, ...]


_CSAM_LAW = ("Directive 2011/93/EU on combating the sexual abuse and sexual exploitation of "
             "children, Art. 5 (child sexual abuse material), as transposed in national law")
_NCII_LAW = ("Directive (EU) 2024/1385 on combating violence against women, Art. 5 "
             "(non-consensual sharing of intimate or manipulated material), as transposed "
             "in national law")

# The one table: policy clause -> ground, category and keywords (POLICY.md's clauses;
# values from the API documentation above). Sexualising a minor and known CSAM are illegal
# everywhere. II-1 and II-2 also cover edits (swimwear on a real person) that are not a
# crime everywhere, so they rest on our terms; II-3 is an image its subject reported as
# shared without consent: illegal sharing. SX-1 (fictional adults) is a terms matter.
CLAUSES: Final[dict[str, ClauseGround]] = {
    "CS-1": ClauseGround(
        ILLEGAL, _CSAM_LAW,
        "The content sexualises a person who is, or may be, under 18.",
        PROTECTION_OF_MINORS, (CSAM,), (CSAM_DEEPFAKE,)),
    "KM-1": ClauseGround(
        ILLEGAL, _CSAM_LAW,
        "The image matches a vetted list of known child sexual abuse material.",
        PROTECTION_OF_MINORS, (CSAM,), (CSAM,)),
    "II-1": ClauseGround(
        INCOMPATIBLE, "II-1",
        "The request asks to undress or sexualise a real person shown in a photo, without "
        "that person's consent on record.",
        CYBER_VIOLENCE, (NCII_DEEPFAKE,), (NCII_DEEPFAKE,)),
    "II-2": ClauseGround(
        INCOMPATIBLE, "II-2",
        "The request asks for a sexualised depiction of a named or identifiable real "
        "person (a deepfake).",
        CYBER_VIOLENCE, (NCII_DEEPFAKE,), (NCII_DEEPFAKE,)),
    "II-3": ClauseGround(
        ILLEGAL, _NCII_LAW,
        "The image matches one reported by the person shown (directly or through "
        "StopNCII) as an intimate image shared without their consent.",
        CYBER_VIOLENCE, (NCII,), (NCII,)),
    "SX-1": ClauseGround(
        INCOMPATIBLE, "SX-1",
        "The content is explicit sexual content, which this service does not allow.",
        OTHER_VIOLATION_TC, (ADULT_SEXUAL_MATERIAL,), (ADULT_SEXUAL_MATERIAL,)),
    # A person in the likeness registry asked that others do not edit photos of them.
    "LR-1": ClauseGround(
        INCOMPATIBLE, "LR-1",
        "The request edits a photo of a person who has asked, through the likeness "
        "registry, that others do not edit images of them.",
        OTHER_VIOLATION_TC, (), ()),
}
