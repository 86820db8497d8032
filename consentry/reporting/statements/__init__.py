"""DSA statements of reasons (Art. 17, 24(5)): one for every restriction, kept in its
transaction (``recorder``), built in the EU Transparency Database's vocabulary
(``builder``, ``vocabulary``), shown to the user (``view``) and sent to the database in
batches (``submitter``). See docs/statements-of-reasons.md."""

from consentry.reporting.statements.builder import Restriction, build
from consentry.reporting.statements.recorder import install

__all__ = ["Restriction", "build", "install"]
