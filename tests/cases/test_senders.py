"""Delivering notices: a development outbox of .eml files, and SMTP against a real local
server (aiosmtpd). Failures come back as a Delivery, never as an exception."""

from __future__ import annotations

import email
import logging
import socket
import threading
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from consentry.cases.notices import Notice
from consentry.cases.senders import (
    NO_ACCOUNT_ADDRESS,
    Delivery,
    OutboxSender,
    Sender,
    SmtpSender,
    sender_from_env,
)

FROM = "safety@platform.example.test"
SINEAD = "siobhán.ní.bhriain@example.test"
BODY = "Hello Siobhán Ní Bhriain,\n\nWe have removed 2 items for your request. — Zoë\n"


def notice(recipient: str = "jane@example.test", body: str = BODY) -> Notice:
    return Notice(recipient, "content_removed", "Case TD-1: content removed — Zoë", body,
                  "TD-1")


def text(message: EmailMessage) -> str:
    """The body as written; on the wire and in .eml files lines end in CRLF."""
    return message.get_content().replace("\r\n", "\n")


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector:
    """An SMTP handler that keeps what it is sent and refuses chosen recipients."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              parse(envelope.original_content)))
        return "250 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and \
        (auth_data.login, auth_data.password) == (b"relay", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Collector, int]]:
    handler = Collector()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            authenticator=authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


# --- outbox -----------------------------------------------------------------------------


def test_outbox_writes_a_parseable_utf8_eml(tmp_path: Path):
    outbox = OutboxSender(tmp_path / "outbox")
    delivery = outbox.send(notice(SINEAD))
    assert delivery.delivered and delivery.channel == "outbox"
    path = Path(delivery.detail)
    assert path.parent == tmp_path / "outbox" and path.suffix == ".eml"
    message = parse(path.read_bytes())
    assert message["To"] == SINEAD
    assert message["X-Consentry-Recipient"] == SINEAD
    assert message["Subject"] == "Case TD-1: content removed — Zoë"
    assert message["X-Consentry-Case"] == "TD-1"
    assert message["Message-ID"] and message["Date"] and message["From"]
    assert message.get_content_charset() == "utf-8"
    assert text(message) == BODY


def test_outbox_keeps_account_notices_too(tmp_path: Path):
    delivery = OutboxSender(tmp_path).send(notice("account:acct-42"))
    assert delivery.delivered
    message = parse(Path(delivery.detail).read_bytes())
    assert message["X-Consentry-Recipient"] == "account:acct-42"
    assert message["To"] is None  # not an address; "account:x" would parse as a group


def test_outbox_files_sort_by_time_and_never_collide(tmp_path: Path):
    outbox = OutboxSender(tmp_path)
    paths = [outbox.send(notice(body=f"n{i}\n")).detail for i in range(50)]
    assert len(set(paths)) == 50
    assert sorted(paths) == paths
    assert [text(parse(Path(p).read_bytes())) for p in paths] == \
        [f"n{i}\n" for i in range(50)]


def test_outbox_sends_from_several_threads_without_losing_any(tmp_path: Path):
    outbox = OutboxSender(tmp_path)
    results: list[Delivery] = []
    threads = [threading.Thread(target=lambda: results.append(outbox.send(notice())))
               for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(d.delivered for d in results)
    assert len(list(tmp_path.glob("*.eml"))) == 20


def test_an_unwritable_outbox_is_a_failed_delivery_not_an_exception(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    delivery = OutboxSender(blocker / "outbox").send(notice())
    assert not delivery.delivered and "could not write to outbox" in delivery.detail


def test_outbox_refuses_a_recipient_that_is_neither_address_nor_account(tmp_path: Path):
    delivery = OutboxSender(tmp_path).send(notice("jane\r\nBcc: x@evil.test"))
    assert not delivery.delivered
    assert not list(tmp_path.iterdir())


# --- SMTP -------------------------------------------------------------------------------


def test_smtp_delivers_with_the_right_headers_and_body(smtp_server):
    handler, port = smtp_server
    sender = SmtpSender("127.0.0.1", port, f"Safety team <{FROM}>", timeout=5)
    delivery = sender.send(notice(SINEAD))
    assert delivery == Delivery(True, "smtp", delivery.detail)
    assert delivery.detail.startswith("<") and delivery.detail.endswith(">")
    [(mail_from, rcpt_tos, message)] = handler.messages
    assert mail_from == FROM and rcpt_tos == [SINEAD]
    assert message["From"] == f"Safety team <{FROM}>"
    assert message["To"] == SINEAD
    assert message["Subject"] == "Case TD-1: content removed — Zoë"
    assert message["Message-ID"] == delivery.detail
    assert text(message) == BODY


def test_smtp_maps_account_recipients_through_the_template(smtp_server):
    handler, port = smtp_server
    sender = SmtpSender("127.0.0.1", port, FROM, account_address="{account}@users.example.test")
    assert sender.send(notice("account:acct-42")).delivered
    [(_, rcpt_tos, message)] = handler.messages
    assert rcpt_tos == ["acct-42@users.example.test"]
    assert message["To"] == "acct-42@users.example.test"
    assert message["X-Consentry-Recipient"] == "account:acct-42"


def test_smtp_without_a_template_cannot_reach_accounts(smtp_server):
    handler, port = smtp_server
    delivery = SmtpSender("127.0.0.1", port, FROM).send(notice("account:acct-42"))
    assert delivery == Delivery(False, "smtp", NO_ACCOUNT_ADDRESS)
    assert handler.messages == []


def test_an_account_id_that_makes_no_address_is_not_sent(smtp_server):
    handler, port = smtp_server
    sender = SmtpSender("127.0.0.1", port, FROM, account_address="{account}@users.example.test")
    delivery = sender.send(notice("account:bad id\r\nBcc: x@evil.test"))
    assert not delivery.delivered and "no valid email address" in delivery.detail
    assert handler.messages == []


def test_an_unreachable_server_is_a_failed_delivery(caplog):
    port = free_port()  # nothing listens there
    with caplog.at_level(logging.INFO, logger="consentry.cases.senders"):
        delivery = SmtpSender("127.0.0.1", port, FROM, timeout=2).send(notice(SINEAD))
    assert not delivery.delivered and delivery.channel == "smtp"
    assert delivery.detail == f"connection refused by 127.0.0.1:{port}"
    assert "TD-1" in caplog.text
    assert SINEAD not in caplog.text and "Zoë" not in caplog.text  # no personal data


def test_a_server_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections, never sends a greeting
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        delivery = SmtpSender("127.0.0.1", port, FROM, timeout=0.3).send(notice())
    assert not delivery.delivered
    assert delivery.detail == f"timed out after 0.3s talking to 127.0.0.1:{port}"


def test_a_refused_recipient_is_a_failed_delivery_without_the_address(smtp_server, caplog):
    handler, port = smtp_server
    handler.refuse.add(SINEAD)
    with caplog.at_level(logging.INFO, logger="consentry.cases.senders"):
        delivery = SmtpSender("127.0.0.1", port, FROM).send(notice(SINEAD))
    assert not delivery.delivered
    assert delivery.detail.startswith("recipient refused by server: 550 5.1.1")
    assert "mailbox unavailable" in delivery.detail
    assert SINEAD not in delivery.detail and SINEAD not in caplog.text
    assert handler.messages == []


def test_smtp_login(smtp_server):
    handler, port = smtp_server
    good = SmtpSender("127.0.0.1", port, FROM, username="relay", password="s3cret")
    assert good.send(notice()).delivered
    bad = SmtpSender("127.0.0.1", port, FROM, username="relay", password="wrong")
    delivery = bad.send(notice())
    assert not delivery.delivered and delivery.detail.startswith("authentication failed: 535")
    assert "wrong" not in repr(bad) and "s3cret" not in repr(good)
    assert len(handler.messages) == 1


def test_starttls_against_a_server_without_it_fails_cleanly(smtp_server):
    handler, port = smtp_server
    delivery = SmtpSender("127.0.0.1", port, FROM, starttls=True).send(notice())
    assert not delivery.delivered and "STARTTLS" in delivery.detail
    assert handler.messages == []


def test_both_senders_are_senders(tmp_path: Path):
    assert isinstance(OutboxSender(tmp_path), Sender)
    assert isinstance(SmtpSender("localhost", 25, FROM), Sender)


# --- configuration ----------------------------------------------------------------------


def test_without_an_smtp_host_notices_go_to_the_outbox(tmp_path: Path):
    sender = sender_from_env({}, tmp_path)
    assert isinstance(sender, OutboxSender) and sender.directory == tmp_path / "outbox"
    assert isinstance(sender_from_env({"CONSENTRY_SMTP_HOST": ""}, tmp_path), OutboxSender)


def test_an_smtp_host_configures_smtp(tmp_path: Path):
    sender = sender_from_env({
        "CONSENTRY_SMTP_HOST": "mail.example.test",
        "CONSENTRY_SMTP_PORT": "587",
        "CONSENTRY_SMTP_FROM": FROM,
        "CONSENTRY_SMTP_USER": "relay",
        "CONSENTRY_SMTP_PASSWORD": "s3cret",
        "CONSENTRY_SMTP_STARTTLS": "true",
        "CONSENTRY_SMTP_ACCOUNT_ADDRESS": "{account}@users.example.test",
    }, tmp_path)
    assert isinstance(sender, SmtpSender)
    assert (sender.host, sender.port, sender.sender_address) == ("mail.example.test", 587, FROM)
    assert sender.username == "relay" and sender.starttls
    assert sender.address_for("account:7") == "7@users.example.test"


def test_smtp_defaults(tmp_path: Path):
    sender = sender_from_env({"CONSENTRY_SMTP_HOST": "mail.example.test",
                              "CONSENTRY_SMTP_FROM": FROM}, tmp_path)
    assert isinstance(sender, SmtpSender)
    assert sender.port == 25 and not sender.starttls and sender.username is None
    assert sender.account_address is None


def test_smtp_host_without_from_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ValueError, match="CONSENTRY_SMTP_FROM"):
        sender_from_env({"CONSENTRY_SMTP_HOST": "mail.example.test"}, tmp_path)


@pytest.mark.parametrize(("name", "value", "complaint"), [
    ("CONSENTRY_SMTP_PORT", "smtp", "CONSENTRY_SMTP_PORT"),
    ("CONSENTRY_SMTP_PORT", "70000", "CONSENTRY_SMTP_PORT"),
    ("CONSENTRY_SMTP_STARTTLS", "ture", "CONSENTRY_SMTP_STARTTLS"),
    ("CONSENTRY_SMTP_PASSWORD", "s3cret", "CONSENTRY_SMTP_USER"),
    ("CONSENTRY_SMTP_ACCOUNT_ADDRESS", "users.example.test", "{account}"),
])
def test_bad_smtp_settings_are_clear_errors(tmp_path: Path, name, value, complaint):
    env = {"CONSENTRY_SMTP_HOST": "mail.example.test", "CONSENTRY_SMTP_FROM": FROM,
           name: value}
    with pytest.raises(ValueError, match=complaint.replace("{", r"\{").replace("}", r"\}")):
        sender_from_env(env, tmp_path)
