"""deskpal.email.smtp against a real SMTP server (tests/mail/smtp_sink.py): what arrives, and how
each failure is named."""

from __future__ import annotations

import email.policy
import socket
import subprocess
import sys
import uuid
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from deskpal.email.smtp import SmtpConfig, SmtpFailure, check, config_of, deliver
from tests.mail.smtp_sink import FROM_ADDRESS, SmtpSink

SECURITY = {"starttls": "starttls", "ssl": "ssl", "plain": "none"}


def config(sink: SmtpSink, **overrides: object) -> SmtpConfig:
    fields: dict[str, object] = {
        "host": sink.host,
        "port": sink.port,
        "security": SECURITY[sink.mode],
        "user": sink.user,
        "password": sink.password,
        "ca_file": sink.ca_file,
        "timeout": 5.0,
    }
    return SmtpConfig(**(fields | overrides))  # type: ignore[arg-type]


def mail(to: str = "ann@customer.test", cc: str | None = None, body: str = "Hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Acme Support <{FROM_ADDRESS}>"
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = "Your ticket [#42]"
    message["Message-ID"] = make_msgid(domain="acme.test")
    message.set_content(body)
    return message


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def failure_of(cfg: SmtpConfig, message: EmailMessage | None = None, *to: str) -> SmtpFailure:
    with pytest.raises(SmtpFailure) as caught:
        await deliver(
            cfg, message or mail(), sender=FROM_ADDRESS, recipients=list(to) or ["ann@customer.test"]
        )
    return caught.value


@pytest.mark.parametrize("mode", ["starttls", "ssl", "plain"])
async def test_a_mail_arrives_as_given_with_every_envelope_recipient(
    mode: str, request: pytest.FixtureRequest
) -> None:
    sink: SmtpSink = request.getfixturevalue(
        {"starttls": "smtp_sink", "ssl": "smtp_sink_ssl"}.get(mode, "smtp_sink_plain")
    )
    message = mail(cc="bob@customer.test", body="Grüße aus Köln\n.a line that starts with a dot\n")
    recipients = ["ann@customer.test", "bob@customer.test", "hidden@customer.test"]  # the last: Bcc

    accepted = await deliver(config(sink), message, sender=FROM_ADDRESS, recipients=recipients)

    (got,) = await sink.wait_for(1)
    assert accepted.code == 250
    assert accepted.text.startswith("2.0.0 Ok: queued as Q")
    assert accepted.refused == {}
    assert got.sender == FROM_ADDRESS
    assert got.recipients == recipients
    assert got.raw == message.as_bytes(policy=email.policy.SMTP)
    assert got.message_id == message["Message-ID"]
    assert got.message.get_content() == "Grüße aus Köln\n.a line that starts with a dot\n"
    assert "hidden@customer.test" not in got.raw.decode()  # deliver adds no Bcc header
    assert got.tls is (mode != "plain")
    assert got.authenticated_as == (None if mode == "plain" else "agent")
    assert sink.by_message_id() == {message["Message-ID"]: [got]}


@pytest.mark.parametrize(
    ("code", "text"), [(421, "4.3.2 Service shutting down"), (451, "4.7.1 Greylisted, try again later")]
)
async def test_a_4xx_at_data_is_transient_with_the_server_s_words(
    smtp_sink: SmtpSink, code: int, text: str
) -> None:
    smtp_sink.fail_next(code, text)
    failure = await failure_of(config(smtp_sink))
    assert (failure.stage, failure.code, failure.text, failure.transient) == ("data", code, text, True)
    assert "retried" in failure.advice()
    assert smtp_sink.rejected == 1 and smtp_sink.messages == []

    await deliver(config(smtp_sink), mail(), sender=FROM_ADDRESS, recipients=["ann@customer.test"])
    assert len(await smtp_sink.wait_for(1)) == 1  # the next attempt gets through


async def test_a_5xx_at_data_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(554, "5.6.0 Message rejected as spam")
    failure = await failure_of(config(smtp_sink))
    assert (failure.stage, failure.code, failure.transient) == ("data", 554, False)
    assert failure.text == "5.6.0 Message rejected as spam"
    assert str(failure) == "data: 554 5.6.0 Message rejected as spam"


async def test_550_on_the_only_recipient_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(550, "5.1.1 <ann@customer.test>: no such user", stage="rcpt")
    failure = await failure_of(config(smtp_sink))
    assert (failure.stage, failure.code, failure.transient) == ("recipients", 550, False)
    assert failure.text == "5.1.1 <ann@customer.test>: no such user"
    assert failure.refused == {"ann@customer.test": (550, "5.1.1 <ann@customer.test>: no such user")}
    assert smtp_sink.messages == []


async def test_a_partial_refusal_sends_to_the_others_and_names_the_refused(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipient("gone@customer.test")
    accepted = await deliver(
        config(smtp_sink), mail(), sender=FROM_ADDRESS, recipients=["gone@customer.test", "ann@customer.test"]
    )
    assert accepted.refused == {"gone@customer.test": (550, "5.1.1 No such user")}
    (got,) = await smtp_sink.wait_for(1)
    assert got.recipients == ["ann@customer.test"]


async def test_every_recipient_refused_is_transient_only_when_every_refusal_was_4xx(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.fail_next(450, "4.2.0 Mailbox busy", stage="rcpt", times=2)
    deferred = await failure_of(config(smtp_sink), None, "a@customer.test", "b@customer.test")
    assert (deferred.stage, deferred.code, deferred.transient) == ("recipients", 450, True)
    assert deferred.text == "a@customer.test: 450 4.2.0 Mailbox busy; b@customer.test: 450 4.2.0 Mailbox busy"

    smtp_sink.fail_next(450, "4.2.0 Mailbox busy", stage="rcpt")
    smtp_sink.refuse_recipient("b@customer.test")
    mixed = await failure_of(config(smtp_sink), None, "a@customer.test", "b@customer.test")
    assert (mixed.stage, mixed.transient) == ("recipients", False)
    assert smtp_sink.messages == []


async def test_421_on_a_recipient_ends_the_session_as_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(421, "4.3.2 Too busy, closing", stage="rcpt")
    failure = await failure_of(config(smtp_sink), None, "a@customer.test", "b@customer.test")
    assert (failure.stage, failure.code, failure.transient) == ("recipients", 421, True)


async def test_a_refused_sender_is_named(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(553, "5.7.1 Sender address rejected: not owned by user agent", stage="mail")
    failure = await failure_of(config(smtp_sink))
    assert (failure.stage, failure.code, failure.transient) == ("sender", 553, False)
    assert "fromAddress" in failure.advice()


async def test_a_wrong_password_is_a_permanent_auth_failure(smtp_sink: SmtpSink) -> None:
    failure = await failure_of(config(smtp_sink, password="wrong"))
    assert (failure.stage, failure.code, failure.transient) == ("auth", 535, False)
    assert "smtpUser/smtpPassword" in failure.advice() and "app password" in failure.advice()
    assert smtp_sink.messages == []


async def test_no_sign_in_where_the_server_requires_it_says_so(smtp_sink: SmtpSink) -> None:
    failure = await failure_of(config(smtp_sink, user=None, password=None))
    assert (failure.stage, failure.code, failure.transient) == ("sender", 530, False)
    assert "set smtpUser and smtpPassword" in failure.advice()


@pytest.mark.parametrize("fixture", ["smtp_sink", "smtp_sink_ssl"])
async def test_an_untrusted_certificate_is_a_tls_failure(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    sink: SmtpSink = request.getfixturevalue(fixture)
    failure = await failure_of(config(sink, ca_file=None))
    assert (failure.stage, failure.code, failure.transient) == ("tls", None, False)
    assert "certificate" in failure.text
    assert "DESKPAL_SMTP_CA_FILE" in failure.advice() and "certificate" in failure.advice()
    assert sink.messages == []


async def test_starttls_required_but_not_offered_is_a_tls_failure(smtp_sink_plain: SmtpSink) -> None:
    failure = await failure_of(config(smtp_sink_plain, security="starttls"))
    assert (failure.stage, failure.transient) == ("tls", False)
    assert "does not offer STARTTLS" in failure.advice()
    assert smtp_sink_plain.messages == []


async def test_tls_from_the_start_on_a_starttls_port_is_a_tls_failure(smtp_sink: SmtpSink) -> None:
    failure = await failure_of(config(smtp_sink, security="ssl"))
    assert (failure.stage, failure.transient) == ("tls", False)


async def test_no_server_on_the_port_is_a_transient_connect_failure() -> None:
    port = free_port()
    failure = await failure_of(SmtpConfig(host="127.0.0.1", port=port, security="none", timeout=5))
    assert (failure.stage, failure.code, failure.transient) == ("connect", None, True)
    assert failure.text == "Connection refused"
    assert f"127.0.0.1:{port}" in failure.advice() and "smtpPort" in failure.advice()


async def test_an_unknown_host_name_is_a_dns_failure() -> None:
    failure = await failure_of(SmtpConfig(host="nonexistent.invalid", port=25, security="none", timeout=5))
    assert failure.stage == "dns"
    assert "nonexistent.invalid" in failure.advice()


async def test_a_server_that_does_not_answer_in_time_is_a_transient_timeout(smtp_sink: SmtpSink) -> None:
    smtp_sink.delay = 1.0
    failure = await failure_of(config(smtp_sink, timeout=0.3))
    assert (failure.stage, failure.transient, failure.reason) == ("timeout", True, "data")


async def test_a_malformed_address_is_a_failure_not_another_exception(smtp_sink: SmtpSink) -> None:
    failure = await failure_of(config(smtp_sink), None, "ann@customer.test\r\nRCPT TO:<x@evil.test>")
    assert (failure.stage, failure.transient) == ("recipients", False)
    assert smtp_sink.messages == []
    with pytest.raises(SmtpFailure):
        await deliver(config(smtp_sink), mail(), sender=FROM_ADDRESS, recipients=[])


async def test_an_address_that_is_not_ascii_goes_out_over_smtputf8(smtp_sink: SmtpSink) -> None:
    message = mail(to="jörg@kunde.test")
    await deliver(config(smtp_sink), message, sender=FROM_ADDRESS, recipients=["jörg@kunde.test"])
    (got,) = await smtp_sink.wait_for(1)
    assert got.recipients == ["jörg@kunde.test"]
    assert got.message["To"] == "jörg@kunde.test"


async def test_check_reports_what_worked(
    smtp_sink: SmtpSink, smtp_sink_ssl: SmtpSink, smtp_sink_plain: SmtpSink
) -> None:
    starttls = await check(config(smtp_sink))
    assert starttls.ok and starttls.stage is None
    assert starttls.message == f"Connected to 127.0.0.1:{smtp_sink.port}, STARTTLS, signed in as agent."
    assert starttls.server_text == "localhost Python SMTP 1.4.6"  # the greeting
    ssl = await check(config(smtp_sink_ssl))
    assert ssl.ok and ssl.message == (
        f"Connected to 127.0.0.1:{smtp_sink_ssl.port}, TLS from the start (SSL), signed in as agent."
    )
    plain = await check(config(smtp_sink_plain))
    assert plain.ok
    assert (
        plain.message
        == f"Connected to 127.0.0.1:{smtp_sink_plain.port}, no encryption, no sign-in (smtpUser is empty)."
    )
    assert [s.messages for s in (smtp_sink, smtp_sink_ssl, smtp_sink_plain)] == [[], [], []]


async def test_check_reports_what_failed_and_never_raises(smtp_sink: SmtpSink) -> None:
    wrong = await check(config(smtp_sink, password="wrong"))
    assert (wrong.ok, wrong.stage) == (False, "auth")
    assert wrong.server_text == "5.7.8 Authentication credentials invalid"
    assert wrong.message.startswith(f"127.0.0.1:{smtp_sink.port} refused the sign-in (535 5.7.8")
    untrusted = await check(config(smtp_sink, ca_file=None))
    assert (untrusted.ok, untrusted.stage, untrusted.server_text) == (False, "tls", None)
    refused = await check(SmtpConfig(host="127.0.0.1", port=free_port(), security="none"))
    assert (refused.ok, refused.stage) == (False, "connect")
    bad_ca = await check(config(smtp_sink, ca_file=f"/nonexistent/{uuid.uuid4().hex}.pem"))
    assert (bad_ca.ok, bad_ca.stage) == (False, "tls") and "DESKPAL_SMTP_CA_FILE" in bad_ca.message


def test_config_of_channel_settings() -> None:
    assert config_of({}) is None
    assert config_of({"smtpHost": "  "}) is None
    cfg = config_of(
        {"smtpHost": "smtp.example.com", "smtpUser": "bob", "smtpPassword": "pw"}, ca_file="/ca.pem"
    )
    assert cfg == SmtpConfig(
        host="smtp.example.com", port=None, security="starttls", user="bob", password="pw", ca_file="/ca.pem"
    )
    assert cfg is not None and cfg.resolved_port == 587 and "pw" not in repr(cfg)
    ssl = config_of({"smtpHost": "smtp.gmail.com", "smtpSecurity": "ssl"}, timeout=5)
    assert ssl is not None and (ssl.resolved_port, ssl.timeout, ssl.user) == (465, 5, None)
    none = config_of({"smtpHost": "localhost", "smtpSecurity": "none", "smtpPort": 2525})
    assert none is not None and none.server == "localhost:2525"


def test_the_sink_takes_mail_from_another_process(smtp_sink_plain: SmtpSink) -> None:
    script = (
        "import smtplib, sys\n"
        "with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:\n"
        "    s.sendmail('a@acme.test', ['b@customer.test'],\n"
        "               'Message-ID: <p@acme.test>\\r\\n\\r\\nhi\\r\\n')\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, smtp_sink_plain.host, str(smtp_sink_plain.port)], check=True
    )
    (got,) = smtp_sink_plain.messages
    assert (got.sender, got.recipients, got.message_id) == (
        "a@acme.test",
        ["b@customer.test"],
        "<p@acme.test>",
    )
