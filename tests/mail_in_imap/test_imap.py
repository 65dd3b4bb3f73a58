"""email/inbound/imap.py against the real Dovecot: each security mode, every failure named, and the
folder left as it was (EXAMINE, BODY.PEEK[])."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from deskpal.email.inbound import imap
from deskpal.email.inbound.imap import ImapConfig, ImapFailure, ImapSession, _pending_of, config_of
from tests.mail_in_imap.dovecot import Dovecot, ImapAccount


def _mail(n: int, body: str = "Hello") -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.test>\r\nTo: support@acme.test\r\nSubject: Question {n}\r\n"
        f"Message-ID: <q{n}-{time.time_ns()}@example.test>\r\n\r\n{body} {n}\r\n"
    ).encode()


def _config(account: ImapAccount, security: str = "starttls", **settings: object) -> ImapConfig:
    config = config_of(
        account.channel_settings(security, **settings), ca_file=account.server.ca_file, timeout=5
    )
    assert config is not None
    return config


class TestConfig:
    def test_no_imap_host_is_no_config(self) -> None:
        assert config_of({"smtpHost": "smtp.example.com"}) is None

    def test_unset_security_is_ssl_on_993_and_folder_inbox(self) -> None:
        config = config_of({"imapHost": "imap.example.com", "imapUser": "bob"})
        assert config is not None
        assert (config.security, config.resolved_port, config.folder) == ("ssl", 993, "INBOX")

    def test_starttls_and_none_default_to_143(self) -> None:
        for security in ("starttls", "none"):
            config = config_of({"imapHost": "imap.example.com", "imapSecurity": security})
            assert config is not None and config.resolved_port == 143

    def test_account_ignores_port_and_case_of_the_host(self) -> None:
        a = config_of({"imapHost": "IMAP.Example.com", "imapUser": "bob", "imapPort": 993})
        b = config_of({"imapHost": "imap.example.com", "imapUser": "bob", "imapPort": 143})
        assert a is not None and b is not None and a.account == b.account == "bob@imap.example.com"


class TestPendingParsing:
    def test_star_range_quirk_is_filtered(self) -> None:
        # `UID FETCH 8:*` on a folder whose last UID is 7 still answers for UID 7 (RFC 3501, 6.4.8).
        assert _pending_of([b"7 (UID 7 RFC822.SIZE 120)"], after_uid=7) == []

    def test_either_order_of_items_and_ascending(self) -> None:
        lines = [b"2 (RFC822.SIZE 90 UID 12)", b"1 (UID 10 RFC822.SIZE 50)", None]
        assert [(p.uid, p.size) for p in _pending_of(lines, after_uid=0)] == [(10, 50), (12, 90)]


class TestCheck:
    @pytest.mark.parametrize("security", ["ssl", "starttls", "none"])
    async def test_each_security_mode_signs_in_and_examines(
        self, imap_account: ImapAccount, security: str
    ) -> None:
        imap_account.deliver(_mail(1))
        result = await imap.check(_config(imap_account, security))
        assert result.ok, result.message
        assert result.stage is None
        assert f"signed in as {imap_account.user}" in result.message
        assert "folder INBOX: 1 message " in result.message
        assert result.server_text and "Dovecot" in result.server_text

    async def test_plain_connection_is_told_starttls_is_offered(self, imap_account: ImapAccount) -> None:
        result = await imap.check(_config(imap_account, "none"))
        assert result.ok and 'imapSecurity "starttls" would encrypt' in result.message

    async def test_wrong_password_is_an_auth_failure_with_the_servers_words(
        self, imap_account: ImapAccount
    ) -> None:
        result = await imap.check(_config(imap_account, "ssl", imapPassword="wrong"))
        assert not result.ok and result.stage == "auth"
        assert result.server_text and "AUTHENTICATIONFAILED" in result.server_text
        assert "check imapUser/imapPassword" in result.message

    async def test_no_user_is_an_auth_failure_naming_the_setting(self, imap_account: ImapAccount) -> None:
        settings = imap_account.channel_settings("ssl")
        del settings["imapUser"]
        config = config_of(settings, ca_file=imap_account.server.ca_file)
        assert config is not None
        result = await imap.check(config)
        assert result.stage == "auth" and "set imapUser and imapPassword" in result.message

    async def test_refused_connection_is_a_connect_failure(self) -> None:
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        result = await imap.check(ImapConfig("127.0.0.1", port, "ssl", user="x", timeout=5))
        assert result.stage == "connect" and "Connection refused" in result.message
        assert result.server_text is None

    async def test_unknown_host_is_a_dns_failure(self) -> None:
        result = await imap.check(ImapConfig("no-such-host.invalid", None, "ssl", user="x", timeout=5))
        assert result.stage == "dns" and "check imapHost" in result.message

    async def test_certificate_of_an_unknown_ca_is_a_tls_failure(self, imap_account: ImapAccount) -> None:
        config = config_of(imap_account.channel_settings("ssl"), timeout=5)  # the tests' CA not trusted
        assert config is not None
        result = await imap.check(config)
        assert result.stage == "tls" and "DESKPAL_IMAP_CA_FILE" in result.message

    async def test_ssl_on_the_plain_port_is_a_tls_failure(self, imap_account: ImapAccount) -> None:
        result = await imap.check(_config(imap_account, "ssl", imapPort=imap_account.server.port))
        assert result.stage == "tls" and 'use "ssl" on 993 or "starttls" on 143' in result.message

    async def test_starttls_on_the_ssl_port_fails_within_the_timeout(self, imap_account: ImapAccount) -> None:
        # The IMAPS port waits for a TLS ClientHello; a client waiting for a greeting waits too.
        settings = imap_account.channel_settings("starttls", imapPort=imap_account.server.ssl_port)
        config = config_of(settings, ca_file=imap_account.server.ca_file, timeout=1.0)
        assert config is not None
        started = time.monotonic()
        result = await imap.check(config)
        assert result.stage == "timeout" and "did not answer in time" in result.message
        assert time.monotonic() - started < 5

    async def test_missing_folder_is_a_select_failure_listing_the_folders(
        self, imap_account: ImapAccount
    ) -> None:
        imap_account.create_folder("Support")
        result = await imap.check(_config(imap_account, imapFolder="Suport"))
        assert result.stage == "select"
        assert "check imapFolder" in result.message and "Support" in result.message


class TestSession:
    async def test_fetch_by_uid_keeps_the_bytes_and_the_flags(self, imap_account: ImapAccount) -> None:
        sent = [_mail(1), _mail(2, "x" * 5000)]
        unread = imap_account.deliver(sent[0])
        read = imap_account.deliver(sent[1], seen=True)
        session = ImapSession(_config(imap_account))
        try:
            await session.open()
            state = await session.examine()
            pending = await session.pending(0)
            mails = await session.fetch([p.uid for p in pending])
        finally:
            await session.close()
        assert state.exists == 2 and state.uidnext == read + 1
        assert [p.uid for p in pending] == [unread, read]
        assert [p.size for p in pending] == [len(m) for m in sent]
        assert [(m.uid, m.raw) for m in mails] == [(unread, sent[0]), (read, sent[1])]
        assert "\\Seen" not in imap_account.flags(unread)  # fetched, still unread for everyone else
        assert "\\Seen" in imap_account.flags(read)

    async def test_pending_after_the_last_uid_is_empty(self, imap_account: ImapAccount) -> None:
        last = imap_account.deliver(_mail(1))
        session = ImapSession(_config(imap_account))
        try:
            await session.open()
            await session.examine()
            assert await session.pending(last) == []
        finally:
            await session.close()

    async def test_an_expunged_uid_is_left_out_of_the_fetch(self, imap_account: ImapAccount) -> None:
        kept = imap_account.deliver(_mail(1))
        session = ImapSession(_config(imap_account))
        try:
            await session.open()
            await session.examine()
            assert [m.uid for m in await session.fetch([kept, kept + 50])] == [kept]
        finally:
            await session.close()

    async def test_a_cancelled_step_drops_the_connection_at_once(self, dovecot: Dovecot) -> None:
        # A server that accepts and never greets: the step blocks in the thread until cancelled.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            session = ImapSession(ImapConfig("127.0.0.1", port, "none", user="x", timeout=30))
            task = asyncio.create_task(session.open())
            await asyncio.sleep(0.3)
            started = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await session.close()
            assert time.monotonic() - started < 1

    async def test_silent_server_is_a_timeout_failure(self) -> None:
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()
            port = silent.getsockname()[1]
            session = ImapSession(ImapConfig("127.0.0.1", port, "none", user="x", timeout=0.5))
            with pytest.raises(ImapFailure) as caught:
                await session.open()
            await session.close()
        assert caught.value.stage == "timeout" and caught.value.transient
        assert "did not answer in time" in caught.value.advice()
