"""Delivery of notices: the edge where a `Notice` leaves the system.

A failed delivery is an ordinary event, not an exception: every sender returns a
`Delivery` saying what happened, so the caller can record it on the case and retry.
Only programming errors raise.

Recipients and bodies are personal data (a victim's address, what happened to them), so
nothing here logs them, and failure details never repeat the recipient's address.
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol, runtime_checkable

from consentry.cases.notices import ACCOUNT_PREFIX, Notice

log = logging.getLogger(__name__)

RECIPIENT_HEADER = "X-Consentry-Recipient"
NO_ACCOUNT_ADDRESS = "no address for platform accounts; set CONSENTRY_SMTP_ACCOUNT_ADDRESS"

# Deliberately simple: it refuses whitespace and control characters (header injection)
# and anything without one @ and a dotted domain. The mail server judges the rest.
_ADDRESS = re.compile(r"^[^@\s<>\x00-\x1f\x7f]+@[^@\s<>\x00-\x1f\x7f]+\.[^@\s<>\x00-\x1f\x7f]+$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Delivery:
    """The outcome of one send: `detail` is a message id, a file path, or the reason
    it failed."""

    delivered: bool
    channel: str
    detail: str


@runtime_checkable
class Sender(Protocol):
    name: str

    def send(self, notice: Notice) -> Delivery:
        """Deliver one notice; never raises for an ordinary delivery failure."""
        ...


class OutboxSender:
    """Development delivery: each notice becomes an RFC 5322 `.eml` file in a folder.

    File names start with the UTC time to the microsecond (strictly increasing within a
    process), so a directory listing is in sending order, and end with a random suffix,
    so two processes never collide.
    """

    name = "outbox"

    def __init__(self, directory: Path, *, sender_address: str = "consentry@localhost") -> None:
        self.directory = Path(directory)
        self.sender_address = sender_address
        self._lock = threading.Lock()
        self._last = datetime.min.replace(tzinfo=UTC)

    def __repr__(self) -> str:
        return f"OutboxSender({str(self.directory)!r})"

    def _next_stamp(self) -> datetime:
        # Strictly increasing, so two notices in the same microsecond still sort in order.
        with self._lock:
            now = max(datetime.now(UTC), self._last + timedelta(microseconds=1))
            self._last = now
            return now

    def send(self, notice: Notice) -> Delivery:
        """Write the notice as a `.eml` file; the detail is the file's path."""
        to = notice.recipient if _ADDRESS.match(notice.recipient) else None
        if to is None and not _is_account(notice.recipient):
            return Delivery(False, self.name, "recipient is not an email address or a "
                            "platform account")
        message = compose(notice, self.sender_address, to)
        stamp = self._next_stamp().strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # "x": refuse to overwrite, so a collision can never lose a notice silently.
            with path.open("xb") as f:
                f.write(message.as_bytes(policy=policy.SMTP))
        except OSError as e:
            detail = f"could not write to outbox {self.directory}: {e.strerror or e}"
            log.warning("notice %s for case %s not delivered: %s", notice.kind,
                        notice.case_number, detail)
            return Delivery(False, self.name, detail)
        log.info("notice %s for case %s written to outbox", notice.kind, notice.case_number)
        return Delivery(True, self.name, str(path))


class SmtpSender:
    """Delivery by email through an SMTP relay.

    `account_address` maps `account:<id>` recipients to an address, e.g.
    "{account}@users.example.org"; without it such notices are reported undeliverable.
    """

    name = "smtp"

    def __init__(self, host: str, port: int, sender_address: str, *,
                 username: str | None = None, password: str | None = None,
                 starttls: bool = False, timeout: float = 10.0,
                 account_address: str | None = None) -> None:
        if not host:
            raise ValueError("SMTP host is empty")
        if not _ADDRESS.match(parseaddr(sender_address)[1]):
            raise ValueError(f"SMTP sender address {sender_address!r} is not an email "
                             "address")
        if account_address is not None and "{account}" not in account_address:
            raise ValueError("account address template must contain {account}, e.g. "
                             "'{account}@users.example.org'")
        self.host = host
        self.port = port
        self.sender_address = sender_address
        self.username = username
        self._password = password
        self.starttls = starttls
        self.timeout = timeout
        self.account_address = account_address

    def __repr__(self) -> str:  # no password
        return (f"SmtpSender({self.host!r}, {self.port}, {self.sender_address!r}, "
                f"username={self.username!r}, starttls={self.starttls})")

    def address_for(self, recipient: str) -> str | None:
        """The email address a recipient is reached at, or None if there is none."""
        if _is_account(recipient):
            if self.account_address is None:
                return None
            account = recipient.removeprefix(ACCOUNT_PREFIX)
            address = self.account_address.format(account=account)
        else:
            address = recipient
        return address if _ADDRESS.match(address) else None

    def send(self, notice: Notice) -> Delivery:
        """Send the notice by email; the detail is its Message-ID, or why it failed."""
        to = self.address_for(notice.recipient)
        if to is None:
            if _is_account(notice.recipient) and self.account_address is None:
                return self._failed(notice, NO_ACCOUNT_ADDRESS)
            return self._failed(notice, "recipient has no valid email address")
        message = compose(notice, self.sender_address, to)
        try:
            self._transmit(message, to)
        except smtplib.SMTPRecipientsRefused as e:
            code, reply = next(iter(e.recipients.values()), (0, b""))
            return self._failed(notice, f"recipient refused by server: {code} "
                                f"{_reply(reply, to)}")
        except smtplib.SMTPSenderRefused as e:
            return self._failed(notice, f"sender address refused by server: {e.smtp_code} "
                                f"{_reply(e.smtp_error, to)}")
        except smtplib.SMTPAuthenticationError as e:
            return self._failed(notice, f"authentication failed: {e.smtp_code} "
                                f"{_reply(e.smtp_error, to)}")
        except smtplib.SMTPNotSupportedError as e:
            return self._failed(notice, f"server does not support a needed feature: {e}")
        except smtplib.SMTPResponseException as e:
            return self._failed(notice, f"server error: {e.smtp_code} "
                                f"{_reply(e.smtp_error, to)}")
        except smtplib.SMTPServerDisconnected as e:
            # smtplib reports a read timeout as a disconnection; say what really happened.
            if isinstance(e.__context__, TimeoutError):
                return self._timed_out(notice)
            return self._failed(notice, f"server {self._where} closed the connection: {e}")
        except smtplib.SMTPException as e:
            return self._failed(notice, f"SMTP error with {self._where}: {e}")
        except TimeoutError:
            return self._timed_out(notice)
        except ConnectionRefusedError:
            return self._failed(notice, f"connection refused by {self._where}")
        except socket.gaierror as e:
            return self._failed(notice, f"cannot resolve SMTP host {self.host!r}: {e.strerror}")
        except ssl.SSLError as e:
            return self._failed(notice, f"TLS with {self._where} failed: {e.reason or e}")
        except OSError as e:
            return self._failed(notice, f"cannot reach {self._where}: {e.strerror or e}")
        log.info("notice %s for case %s sent via smtp", notice.kind, notice.case_number)
        return Delivery(True, self.name, str(message["Message-ID"]))

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _transmit(self, message: EmailMessage, to: str) -> None:
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self._password or "")
            refused = smtp.send_message(message, to_addrs=[to])
            if refused:  # only when some of several recipients were refused
                raise smtplib.SMTPRecipientsRefused(refused)
        except BaseException:
            smtp.close()
            raise
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            # The message was accepted; a failed goodbye must not make us send it twice.
            smtp.close()

    def _timed_out(self, notice: Notice) -> Delivery:
        return self._failed(notice, f"timed out after {self.timeout:g}s talking to "
                            f"{self._where}")

    def _failed(self, notice: Notice, detail: str) -> Delivery:
        log.warning("notice %s for case %s not delivered: %s", notice.kind,
                    notice.case_number, detail)
        return Delivery(False, self.name, detail)


def compose(notice: Notice, sender_address: str, to: str | None) -> EmailMessage:
    """The notice as an email. `to` is None for a platform account with no address;
    the recipient is always kept in the X-Consentry-Recipient header."""
    message = EmailMessage()
    message["From"] = sender_address
    if to is not None:
        message["To"] = to
    message["Subject"] = notice.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    domain = parseaddr(sender_address)[1].rpartition("@")[2] or "consentry.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    message[RECIPIENT_HEADER] = notice.recipient
    message["X-Consentry-Case"] = notice.case_number
    message["X-Consentry-Kind"] = notice.kind
    # Quoted-printable keeps non-ASCII names intact through relays without 8BITMIME.
    message.set_content(notice.body, charset="utf-8", cte="quoted-printable")
    return message


def sender_from_env(env: Mapping[str, str], data_dir: Path) -> Sender:
    """SMTP when CONSENTRY_SMTP_HOST is set, otherwise an outbox under `data_dir`.

    Reads CONSENTRY_SMTP_PORT (default 25), CONSENTRY_SMTP_FROM (required with a host),
    CONSENTRY_SMTP_USER, CONSENTRY_SMTP_PASSWORD, CONSENTRY_SMTP_STARTTLS ("1"/"true")
    and CONSENTRY_SMTP_ACCOUNT_ADDRESS. Raises ValueError on a bad configuration.
    """
    host = env.get("CONSENTRY_SMTP_HOST", "").strip()
    if not host:
        return OutboxSender(Path(data_dir) / "outbox")
    sender_address = env.get("CONSENTRY_SMTP_FROM", "").strip()
    if not sender_address:
        raise ValueError("CONSENTRY_SMTP_HOST is set but CONSENTRY_SMTP_FROM is not: set it "
                         "to the address notices are sent from, e.g. safety@example.org")
    port_text = env.get("CONSENTRY_SMTP_PORT", "").strip() or "25"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"CONSENTRY_SMTP_PORT must be a port number, not {port_text!r}") \
            from None
    if not 0 < port < 65536:
        raise ValueError(f"CONSENTRY_SMTP_PORT must be between 1 and 65535, not {port}")
    starttls_text = env.get("CONSENTRY_SMTP_STARTTLS", "").strip().lower()
    if starttls_text not in _TRUE | _FALSE:
        raise ValueError("CONSENTRY_SMTP_STARTTLS must be 1/true or 0/false, not "
                         f"{starttls_text!r}")
    username = env.get("CONSENTRY_SMTP_USER") or None
    password = env.get("CONSENTRY_SMTP_PASSWORD") or None
    if password and not username:
        raise ValueError("CONSENTRY_SMTP_PASSWORD is set but CONSENTRY_SMTP_USER is not")
    return SmtpSender(host, port, sender_address, username=username, password=password,
                      starttls=starttls_text in _TRUE,
                      account_address=env.get("CONSENTRY_SMTP_ACCOUNT_ADDRESS") or None)


def _is_account(recipient: str) -> bool:
    return recipient.startswith(ACCOUNT_PREFIX) and len(recipient) > len(ACCOUNT_PREFIX)


def _reply(reply: bytes | str, address: str) -> str:
    """A server's reply text, with the recipient's address taken out (servers echo it)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return text.replace(f"<{address}>", "<recipient>").replace(address, "<recipient>").strip()
