"""The only code that speaks SMTP: one connection, one transaction per mail, every failure named.

Everything aiosmtplib, the socket layer or ssl can raise becomes an `SmtpFailure` that says where
the conversation broke (`stage`), what the server said (`code`, `text`, verbatim), whether trying
again later can help (`transient`) and what an admin should change (`advice()`).
"""

from __future__ import annotations

import asyncio
import email.message
import email.policy
import functools
import os
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtplib import (
    SMTP,
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPHeloError,
    SMTPRecipientRefused,
    SMTPResponse,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

SmtpSecurity = Literal["ssl", "starttls", "none"]
Stage = Literal["dns", "connect", "tls", "auth", "sender", "recipients", "data", "timeout", "protocol"]

DEFAULT_PORTS: dict[str, int] = {"ssl": 465, "starttls": 587, "none": 25}


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int | None  # None: 465 for ssl, 587 for starttls, 25 for none
    security: SmtpSecurity  # channel setting smtpSecurity; None in settings means "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    ca_file: str | None = None  # an extra CA to trust: a private relay's, the tests' self-signed one
    local_hostname: str | None = None  # the EHLO name; unset: this machine's FQDN

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.resolved_port}"


def config_of(
    settings: Mapping[str, Any], *, ca_file: str | None = None, timeout: float = 30.0
) -> SmtpConfig | None:
    """From a channel's settings with secrets opened (channels.service.secret_settings): None when
    smtpHost is unset."""
    host = str(settings.get("smtpHost") or "").strip()
    if not host:
        return None
    security: SmtpSecurity = settings.get("smtpSecurity") or "starttls"
    if security not in DEFAULT_PORTS:
        raise ValueError(f"smtpSecurity must be ssl, starttls or none, not {security!r}")
    return SmtpConfig(
        host=host,
        port=settings.get("smtpPort") or None,
        security=security,
        user=settings.get("smtpUser") or None,
        password=settings.get("smtpPassword") or None,
        timeout=timeout,
        ca_file=ca_file,
    )


@dataclass(frozen=True, slots=True)
class SmtpAccepted:
    code: int  # the DATA reply, e.g. 250
    text: str  # the server's reply text (often the queue id): the message's deliveryResponse
    refused: dict[str, tuple[int, str]]  # recipients refused while others were accepted


class SmtpFailure(Exception):
    """A send or check that did not get through, and why."""

    def __init__(
        self,
        stage: Stage,
        text: str,
        *,
        code: int | None = None,
        transient: bool,
        server: str = "the SMTP server",
        reason: str | None = None,
        refused: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        super().__init__(text)
        self.stage: str = stage
        self.code = code
        self.text = text
        self.transient = transient
        self.server = server
        # What kind of problem within the stage: "cert", "no-starttls", "ca-file" (tls); for a
        # timeout, the stage it cut short ("data": the server may have taken the mail).
        self.reason = reason
        self.refused: dict[str, tuple[int, str]] = dict(refused or {})

    def __str__(self) -> str:
        said = f"{self.code} {self.text}" if self.code is not None else self.text
        return f"{self.stage}: {said}"

    def __repr__(self) -> str:
        return f"SmtpFailure({self.stage!r}, {self.text!r}, code={self.code}, transient={self.transient})"

    def advice(self) -> str:
        """A sentence a helpdesk admin can act on."""
        return _advice(self)


def _said(failure: SmtpFailure) -> str:
    return f"{failure.code} {failure.text}" if failure.code is not None else failure.text


def _advice(f: SmtpFailure) -> str:
    host = f.server.rsplit(":", 1)[0]
    if f.code == 530:
        return f"{f.server} requires signing in ({_said(f)}): set smtpUser and smtpPassword."
    if f.stage == "dns":
        if f.transient:
            return (
                f"{host} could not be looked up just now ({f.text}); a send is retried later. If it "
                "persists, check the DNS resolver of the machine deskpal runs on."
            )
        return f"{host} does not exist in DNS ({f.text}): check smtpHost, e.g. smtp.gmail.com."
    if f.stage == "connect":
        if f.code is not None:
            later = "; a send is retried later" if f.transient else ""
            return f"{f.server} answered but refused the session ({_said(f)}){later}."
        return (
            f"Could not connect to {f.server} ({f.text}): check smtpHost and smtpPort (587 for STARTTLS, "
            "465 for SSL, 25 for none) and that outgoing connections to that port are allowed."
        )
    if f.stage == "timeout":
        return (
            f"{f.server} did not answer in time ({f.text}): check smtpPort and that a firewall allows "
            "outgoing connections to it (many clouds block port 25); a send is retried later."
        )
    if f.stage == "tls":
        if f.reason == "no-starttls":
            return (
                f"{f.server} does not offer STARTTLS: use the port that does (usually 587), set "
                'smtpSecurity to "ssl" if this port expects TLS from the start (465), or "none" for a '
                "trusted local relay."
            )
        if f.reason == "cert":
            return (
                f"The TLS certificate of {host} was rejected ({f.text}): check that smtpHost is the name on "
                "the server's certificate; a relay with a private CA needs DESKPAL_SMTP_CA_FILE set to "
                "that CA's PEM file."
            )
        if f.reason == "ca-file":
            return f"The CA file DESKPAL_SMTP_CA_FILE names cannot be used ({f.text}): name a PEM file."
        return (
            f"TLS with {f.server} failed ({f.text}): the port may not speak TLS the way smtpSecurity says; "
            'use "starttls" on 587 or "ssl" on 465.'
        )
    if f.stage == "auth":
        if f.code is None:
            return (
                f"{f.server} offers no sign-in (AUTH) on this connection ({f.text}): use smtpSecurity "
                '"starttls" or "ssl", or leave smtpUser empty for a relay that takes mail without sign-in.'
            )
        return (
            f"{f.server} refused the sign-in ({_said(f)}): check smtpUser/smtpPassword; Gmail needs an app "
            "password, Amazon SES its SMTP credentials (not the AWS access key)."
        )
    if f.stage == "sender":
        return (
            f"{f.server} refused the sender ({_said(f)}): fromAddress must be an address the SMTP account "
            "may send as."
        )
    if f.stage == "recipients":
        return f"{f.server} refused every recipient ({_said(f)})."
    if f.stage == "data":
        if f.transient:
            return f"{f.server} deferred the mail ({_said(f)}); it is retried later."
        return f"{f.server} refused the mail ({_said(f)})."
    return f"The SMTP conversation with {f.server} failed ({_said(f)})."


@dataclass(frozen=True, slots=True)
class SmtpCheck:
    ok: bool
    stage: str | None  # where it failed, as SmtpFailure.stage
    message: str  # "Connected to smtp.example.com:587, STARTTLS, signed in as bob." or the advice
    server_text: str | None  # the server's own words when it answered


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    # Built once: loading the system's CA store costs milliseconds a connection would pay each time.
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


_local_hostname: str | None = None


async def _ehlo_name(config: SmtpConfig) -> str:
    # aiosmtplib asks socket.getfqdn() on every connect (a DNS lookup in a thread); once is enough.
    global _local_hostname
    if config.local_hostname:
        return config.local_hostname
    if _local_hostname is None:
        name = (await asyncio.to_thread(socket.getfqdn)).strip()
        _local_hostname = name if name and not any(c.isspace() for c in name) else "localhost"
    return _local_hostname


_PERMANENT_DNS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME), socket.EAI_SERVICE}


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _as_failure(exc: Exception, stage: Stage, config: SmtpConfig) -> SmtpFailure:
    """What went wrong, in `stage` of the conversation with `config`'s server."""
    server = config.server
    if isinstance(exc, SmtpFailure):
        return exc
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            text = cause.verify_message or str(cause)
            return SmtpFailure("tls", text, transient=False, server=server, reason="cert")
        if isinstance(cause, ssl.SSLError):
            text = cause.reason or str(cause)
            return SmtpFailure("tls", text, transient=False, server=server)
        if isinstance(cause, socket.gaierror):
            transient = cause.errno not in _PERMANENT_DNS
            return SmtpFailure("dns", cause.strerror or str(cause), transient=transient, server=server)
    if isinstance(exc, (SMTPTimeoutError, TimeoutError)):
        text = str(exc) or f"no answer within {config.timeout:g} s"
        # reason keeps the step: a timeout after DATA may hide a mail the server did accept.
        return SmtpFailure("timeout", text, transient=True, server=server, reason=stage)
    if isinstance(exc, SMTPResponseException):
        if isinstance(exc, SMTPConnectResponseError):
            stage = "connect"
        elif isinstance(exc, SMTPAuthenticationError):
            stage = "auth"
        return SmtpFailure(stage, exc.message, code=exc.code, transient=400 <= exc.code < 500, server=server)
    if isinstance(exc, SMTPServerDisconnected):
        text = f"the server closed the connection ({exc})" if str(exc) else "the server closed the connection"
        return SmtpFailure(stage, text, transient=True, server=server)
    if isinstance(exc, OSError):  # refused, reset, unreachable: SMTPConnectError is one too
        errno = next((c.errno for c in _causes(exc) if isinstance(c, OSError) and c.errno), None)
        text = os.strerror(errno) if errno else str(exc)
        return SmtpFailure(stage, text, transient=True, server=server)
    if isinstance(exc, SMTPException):
        return SmtpFailure(stage, str(exc), transient=False, server=server)
    # A bad address (aiosmtplib refuses line breaks), a name that needs SMTPUTF8: never worth a retry.
    return SmtpFailure(stage if stage != "connect" else "protocol", str(exc), transient=False, server=server)


class _Session:
    """One connection, walked stage by stage so that a failure knows where it happened."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.stage: Stage = "connect"
        self.greeting: str | None = None
        self.client: SMTP | None = None

    async def open(self) -> None:
        config = self.config
        context = None
        if config.security != "none":
            self.stage = "tls"
            try:
                context = _tls_context(config.ca_file)
            except (OSError, ValueError) as exc:
                raise SmtpFailure(
                    "tls", str(exc), transient=False, server=config.server, reason="ca-file"
                ) from exc
        self.stage = "connect"
        client = self.client = SMTP(
            hostname=config.host,
            port=config.resolved_port,
            local_hostname=await _ehlo_name(config),
            timeout=config.timeout,
            use_tls=config.security == "ssl",
            start_tls=False,  # done below, so that a server without STARTTLS is a "tls" failure
            tls_context=context,
        )
        self.greeting = (await client.connect()).message
        await self._hello()
        if config.security == "starttls":
            self.stage = "tls"
            if not client.supports_extension("starttls"):
                raise SmtpFailure(
                    "tls",
                    "the server does not offer STARTTLS",
                    transient=False,
                    server=config.server,
                    reason="no-starttls",
                )
            await client.starttls()
            await self._hello()  # RFC 3207: what the server offers is asked again over TLS
        if config.user:
            self.stage = "auth"
            await client.login(config.user, config.password or "")

    async def _hello(self) -> None:
        assert self.client is not None
        try:
            await self.client.ehlo()
        except SMTPHeloError:
            await self.client.helo()

    async def close(self, *, polite: bool = True) -> None:
        """QUIT (polite) or just drop the connection: a cancelled send must not wait on a goodbye."""
        client = self.client
        if client is None:
            return
        try:
            if polite and client.is_connected:
                await client.quit(timeout=min(self.config.timeout, 5.0))
        except (SMTPException, OSError, TimeoutError):
            pass  # the mail's fate is decided; a rude goodbye changes nothing
        finally:
            client.close()

    def failure(self, exc: Exception) -> SmtpFailure:
        return _as_failure(exc, self.stage, self.config)


def _bad_address(address: str) -> bool:
    # aiosmtplib quotes an address by parsing it, so "a@x\r\nRCPT TO:<b@y>" would quietly become
    # b@y: only a bare addr-spec goes on the envelope.
    return "@" not in address or any(c.isspace() or c in '<>,;"' or ord(c) < 32 for c in address)


def _needs_utf8(*addresses: str) -> bool:
    return not all(a.isascii() for a in addresses)


def _check_envelope(config: SmtpConfig, sender: str, recipients: Sequence[str]) -> None:
    if not recipients:
        raise SmtpFailure("recipients", "no recipients", transient=False, server=config.server)
    if _bad_address(sender):
        raise SmtpFailure("sender", f"not an address: {sender!r}", transient=False, server=config.server)
    if bad := [r for r in recipients if _bad_address(r)]:
        text = "not an address: " + ", ".join(map(repr, bad))
        raise SmtpFailure("recipients", text, transient=False, server=config.server)


async def deliver(
    config: SmtpConfig, message: email.message.EmailMessage, *, sender: str, recipients: Sequence[str]
) -> SmtpAccepted:
    """One connection, one transaction: connect (implicit TLS / STARTTLS, required when security is
    starttls / plain), AUTH when user is set, MAIL FROM sender, RCPT TO each, DATA. All recipients
    refused -> SmtpFailure (transient only if every refusal was 4xx). Raises SmtpFailure for every
    failure, never another exception type."""
    _check_envelope(config, sender, recipients)
    async with SmtpSession(config) as session:
        return await session.send(message, sender=sender, recipients=recipients)


class SmtpSession:
    """One connection for several mails, as deliver() sends one: `async with SmtpSession(config) as
    s: await s.send(...)` per mail. A mail the server refuses (MAIL, RCPT or DATA answered 4xx/5xx)
    fails alone and the session goes on after RSET; once the connection itself fails, `usable` is
    False and every later send raises that failure. Every failure is an SmtpFailure."""

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self._session = _Session(config)
        self._broken: SmtpFailure | None = None
        self.sent = 0

    @property
    def usable(self) -> bool:
        return self._broken is None

    async def open(self) -> None:
        """Connect, TLS and sign in: SmtpFailure naming the stage that failed."""
        try:
            await self._session.open()
        except Exception as exc:
            await self._session.close()
            raise self._session.failure(exc) from exc
        except BaseException:
            await self._session.close(polite=False)
            raise

    async def close(self) -> None:
        """QUIT when the session is still sound, else just drop the line."""
        await self._session.close(polite=self._broken is None)

    async def drop(self) -> None:
        """Close the connection without QUIT."""
        await self._session.close(polite=False)

    async def __aenter__(self) -> SmtpSession:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if kind is not None and not issubclass(kind, Exception):
            await self.drop()  # cancelled (a job's time limit): no goodbye to wait on
        else:
            await self.close()

    async def send(
        self, message: email.message.EmailMessage, *, sender: str, recipients: Sequence[str]
    ) -> SmtpAccepted:
        if self._broken is not None:
            raise self._broken
        _check_envelope(self.config, sender, recipients)
        session = self._session
        try:
            accepted = await _transaction(session, message, sender, recipients)
        except SmtpFailure as own:  # refused before DATA (every recipient, SMTPUTF8): still talking
            if own.code is not None:
                await self._reset(own)
            raise
        except Exception as exc:
            failure = session.failure(exc)
            client = session.client
            refused = isinstance(exc, SMTPResponseException) and exc.code != 421
            if refused and client is not None and client.is_connected:
                await self._reset(failure)
            else:  # timed out, disconnected, closing (421), or a reply the protocol did not expect
                self._broken = failure
            raise failure from exc
        self.sent += 1
        return accepted

    async def _reset(self, failure: SmtpFailure) -> None:
        """After a refused mail, RSET clears the envelope for the next; a server that will not reset
        ends the session."""
        assert self._session.client is not None
        try:
            await self._session.client.rset()
        except (SMTPException, OSError, TimeoutError):
            self._broken = failure


async def _transaction(
    session: _Session, message: email.message.EmailMessage, sender: str, recipients: Sequence[str]
) -> SmtpAccepted:
    client, config = session.client, session.config
    assert client is not None
    utf8 = _needs_utf8(sender, *recipients)
    session.stage = "sender"
    if utf8 and not client.supports_extension("smtputf8"):
        raise SmtpFailure(
            "sender",
            "an address is not ASCII and the server does not offer SMTPUTF8",
            transient=False,
            server=config.server,
        )
    data = message.as_bytes(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    options = []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(data)}")
    if client.supports_extension("8bitmime") and not data.isascii():
        options.append("BODY=8BITMIME")
    if utf8:
        options.append("SMTPUTF8")
    encoding = "utf-8" if utf8 else "ascii"
    await client.mail(sender, options=options, encoding=encoding)

    session.stage = "recipients"
    refused: dict[str, tuple[int, str]] = {}
    for recipient in recipients:
        try:
            await client.rcpt(recipient, encoding=encoding)
        except SMTPRecipientRefused as exc:
            if exc.code == 421:  # the server is closing the session: the rest cannot be tried
                raise
            refused[recipient] = (exc.code, exc.message)
    if len(refused) == len(recipients):
        (code, text), *_ = refused.values()
        summary = "; ".join(f"{address}: {c} {t}" for address, (c, t) in refused.items())
        raise SmtpFailure(
            "recipients",
            summary if len(refused) > 1 else text,
            code=code,
            transient=all(400 <= c < 500 for c, _ in refused.values()),
            server=config.server,
            refused=refused,
        )

    session.stage = "data"
    reply: SMTPResponse = await client.data(data)
    return SmtpAccepted(code=reply.code, text=reply.message, refused=refused)


_SECURITY_WORDS = {"ssl": "TLS from the start (SSL)", "starttls": "STARTTLS", "none": "no encryption"}


async def check(config: SmtpConfig) -> SmtpCheck:
    """Connect, TLS as configured, AUTH if user set, then QUIT: what test-smtp reports. Never raises."""
    session = _Session(config)
    try:
        await session.open()
        assert session.client is not None
        offers_starttls = config.security == "none" and session.client.supports_extension("starttls")
    except Exception as exc:
        await session.close()
        failure = session.failure(exc)
        said = failure.text if failure.code is not None else None
        return SmtpCheck(ok=False, stage=failure.stage, message=failure.advice(), server_text=said)
    except BaseException:
        await session.close(polite=False)
        raise
    await session.close()
    parts = [f"Connected to {config.server}", _SECURITY_WORDS[config.security]]
    parts.append(f"signed in as {config.user}" if config.user else "no sign-in (smtpUser is empty)")
    message = ", ".join(parts) + "."
    if offers_starttls:
        message += ' The server offers STARTTLS: smtpSecurity "starttls" would encrypt the mail.'
    return SmtpCheck(ok=True, stage=None, message=message, server_text=session.greeting)
