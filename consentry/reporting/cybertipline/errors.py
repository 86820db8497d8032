"""What can go wrong talking to the CyberTipline, as errors a caller can act on.

NCMEC answers every call with a ``responseCode`` and ``responseDescription``; 0 is success.
The codes below are the documented ones (documentation, "Response codes"; numbers as
reported by the open-source clients cited in docs/cybertipline.md). Each error carries the
code, NCMEC's own description and the step (submit, upload, fileinfo, finish, retract).
"""

from __future__ import annotations

from typing import Any, Final

from consentry.errors import ConsentryError

SUCCESS: Final = 0
SERVER_ERROR: Final = 1000
AUTHENTICATION_REQUIRED: Final = 2000
NOT_AUTHORIZED: Final = 3000
NO_SUBMISSION_AUTHORIZATION: Final = 3100
VALIDATION_FAILED: Final = 4100
REPORT_DOES_NOT_EXIST: Final = 5001
REPORT_ALREADY_RETRACTED: Final = 5101
REPORT_ALREADY_FINISHED: Final = 5102

RESPONSE_CODES: Final[dict[int, str]] = {
    SUCCESS: "Success",
    SERVER_ERROR: "Server error",
    AUTHENTICATION_REQUIRED: "Authentication required",
    NOT_AUTHORIZED: "Not authorized",
    NO_SUBMISSION_AUTHORIZATION: "No submission authorization",
    VALIDATION_FAILED: "Validation failed",
    REPORT_DOES_NOT_EXIST: "Report does not exist",
    REPORT_ALREADY_RETRACTED: "Report already retracted",
    REPORT_ALREADY_FINISHED: "Report already finished",
}


class CyberTiplineError(ConsentryError):
    """NCMEC refused a call, or could not be reached. ``response_code`` is NCMEC's code (None
    when there was no answer to read); ``retryable`` says whether the same call may succeed
    later."""

    code = "ncmec_error"
    retryable = False

    def __init__(self, message: str, *, step: str, response_code: int | None = None,
                 description: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.response_code = response_code
        self.description = description
        self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": str(self), "step": self.step,
                "response_code": self.response_code, "description": self.description}


class CyberTiplineUnavailable(CyberTiplineError):
    """NCMEC is down, overloaded or timed out (HTTP 5xx, code 1000, no answer) after every
    retry. Try again later; progress so far is kept."""

    code = "ncmec_unavailable"
    retryable = True


class CyberTiplineCredentialsRefused(CyberTiplineError):
    """The configured username/password were refused, or the account may not submit (HTTP 401,
    codes 2000, 3000, 3100). Fix the configuration; retrying will not help."""

    code = "ncmec_credentials_refused"


class CyberTiplineRejected(CyberTiplineError):
    """NCMEC refused what was sent (4100: the document failed its validation, with the
    reason in ``description``). Retrying the same document will not help."""

    code = "ncmec_rejected"


class ReportNotFound(CyberTiplineError):
    """5001: NCMEC does not know the report id (never opened, or an unfinished report it
    deleted: 24 hours after opening or 1 hour after the last change, whichever is later)."""

    code = "ncmec_report_not_found"


class ReportAlreadyFinished(CyberTiplineError):
    """5102: the report was already finished; it can no longer change or be retracted."""

    code = "ncmec_report_already_finished"


class ReportAlreadyRetracted(CyberTiplineError):
    """5101: the report was already retracted."""

    code = "ncmec_report_already_retracted"


def error_for(step: str, response_code: int, description: str,
              http_status: int | None = None) -> CyberTiplineError:
    """The domain error for a non-zero ``responseCode``."""
    known = RESPONSE_CODES.get(response_code, "unknown response code")
    said = f": {description}" if description and description != known else ""
    message = f"NCMEC refused {step} with code {response_code} ({known}){said}"
    kind: type[CyberTiplineError]
    if 1000 <= response_code < 2000:  # server-side failures
        kind = CyberTiplineUnavailable
    elif response_code in (AUTHENTICATION_REQUIRED, NOT_AUTHORIZED,
                           NO_SUBMISSION_AUTHORIZATION) or 2000 <= response_code < 4000:
        kind = CyberTiplineCredentialsRefused
    elif response_code == REPORT_DOES_NOT_EXIST:
        kind = ReportNotFound
    elif response_code == REPORT_ALREADY_FINISHED:
        kind = ReportAlreadyFinished
    elif response_code == REPORT_ALREADY_RETRACTED:
        kind = ReportAlreadyRetracted
    else:
        kind = CyberTiplineRejected
    return kind(message, step=step, response_code=response_code, description=description,
                http_status=http_status)
