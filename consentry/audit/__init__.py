"""The tamper-evident record (hash chain, signed checkpoints, verification, export).
Sits just above ``store``; everything that acts is recorded through it."""

from consentry.audit.chain import install, record, record_change
from consentry.audit.checkpoints import PURPOSE, Signer
from consentry.audit.verify import Report, verify, verify_export

__all__ = ["PURPOSE", "Report", "Signer", "install", "record", "record_change", "verify",
           "verify_export"]
