"""The evidence vault: sealed content and metadata, retention, legal holds."""

from consentry.evidence.keys import Keyring, keyring_for, parse_keys
from consentry.evidence.vault import Opened, Vault

__all__ = ["Keyring", "Opened", "Vault", "keyring_for", "parse_keys"]
