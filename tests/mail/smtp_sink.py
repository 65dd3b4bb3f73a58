"""The tests' SMTP server: aiosmtpd in a thread of its own, on 127.0.0.1, with a self-signed CA.

A thread (aiosmtpd's Controller) rather than the test's event loop, so that the server answers
while a test blocks and so that other processes (`deskpal worker` subprocesses) can send to it.
Modes: `starttls` (STARTTLS required, then AUTH as agent/s3cret required), `ssl` (TLS from the
first byte, AUTH required) and `plain` (no TLS, no AUTH). Every accepted mail is recorded; the
next replies can be scripted (`fail_next`, `refuse_recipient`, `delay`).
"""

from __future__ import annotations

import asyncio
import datetime
import email
import email.policy
import ipaddress
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SinkMode = Literal["starttls", "ssl", "plain"]
Stage = Literal["mail", "rcpt", "data"]

USER, PASSWORD = "agent", "s3cret"
FROM_ADDRESS = "support@acme.test"


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Certificates:
    """A CA (ca.pem: what SmtpConfig.ca_file trusts) and the server certificate it signed, for
    localhost and 127.0.0.1."""

    ca_file: str
    cert_file: str
    key_file: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def make_certificates(directory: Path) -> Certificates:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deskpal test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = Certificates(
        str(directory / "ca.pem"), str(directory / "server.pem"), str(directory / "server-key.pem")
    )
    Path(paths.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths.key_file).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: list[str]  # the envelope's: Bcc-only addresses are here and in no header
    raw: bytes  # as it came over DATA (dot-unstuffed, CRLF line ends)
    message: EmailMessage  # parsed with email.policy.default
    message_id: str | None
    authenticated_as: str | None
    tls: bool
    connection: int = 0  # the same number for mails that came over one connection


@dataclass
class _Scripted:
    stage: Stage
    code: int
    text: str
    times: int


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if (scripted := self.sink._take("mail")) is not None:
            return scripted
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.sink._refusal(address)
        if refusal is None:
            refusal = self.sink._take("rcpt")
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink.on_data is not None:
            self.sink.on_data()  # runs in the sink's thread, while the client waits for the reply
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        if (scripted := self.sink._take("data")) is not None:
            return scripted
        return self.sink._record(server, session, envelope)


class SmtpSink:
    """One running server. `host`, `port`, `ca_file` (None in plain mode), `user`, `password`."""

    def __init__(self, mode: SinkMode, certificates: Certificates) -> None:
        self.mode: SinkMode = mode
        self.host = "127.0.0.1"
        self.ca_file: str | None = certificates.ca_file if mode != "plain" else None
        self.user: str | None = USER if mode != "plain" else None
        self.password: str | None = PASSWORD if mode != "plain" else None
        self.delay = 0.0  # seconds before answering DATA
        # Called (in the sink's thread) when a mail's DATA has arrived, before it is answered.
        self.on_data: Callable[[], None] | None = None
        self.rejected = 0  # attempts answered with a scripted failure
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._scripted: list[_Scripted] = []
        self._refused: dict[str, tuple[int, str]] = {}
        self._queue_ids = 0
        self._connections = 0
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": 0,
            "server_hostname": "localhost",  # the greeting's name; unset, aiosmtpd asks getfqdn()
            "data_size_limit": 64 * 1024 * 1024,
            "enable_SMTPUTF8": True,
            "ready_timeout": 10.0,
        }
        if mode == "starttls":
            kwargs |= {
                "tls_context": certificates.server_context(),
                "require_starttls": True,
                "auth_required": True,
                "auth_require_tls": True,
                "authenticator": self._authenticate,
            }
        elif mode == "ssl":
            kwargs |= {
                "ssl_context": certificates.server_context(),
                "auth_required": True,
                "authenticator": self._authenticate,
            }
        self._controller = _PortZeroController(_Handler(self), implicit_tls=mode == "ssl", **kwargs)

    @property
    def port(self) -> int:
        return self._controller.bound_port

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    # --- what arrived --------------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._lock:
            return list(self._messages)

    def by_message_id(self) -> dict[str, list[ReceivedMail]]:
        """Every Message-ID that arrived, with each copy of it (a duplicate has two)."""
        found: dict[str, list[ReceivedMail]] = {}
        for mail in self.messages:
            found.setdefault(mail.message_id or "", []).append(mail)
        return found

    # A deadline, not asyncio.timeout: the failure should list what did arrive.
    async def wait_for(self, n: int, timeout: float = 10.0) -> list[ReceivedMail]:  # noqa: ASYNC109
        """The mail received once at least `n` have arrived; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < n:
            if time.monotonic() > deadline:
                got = [m.message_id for m in self.messages]
                raise AssertionError(f"{len(got)} of {n} mails arrived within {timeout} s: {got}")
            await asyncio.sleep(0.01)
        return self.messages

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._scripted.clear()
            self._refused.clear()
            self.rejected = 0
        self.delay = 0.0
        self.on_data = None

    # --- scripting -----------------------------------------------------------------------------

    def fail_next(self, code: int, text: str, *, stage: Stage = "data", times: int = 1) -> None:
        """Answer the next `times` MAIL, RCPT or DATA commands with `code text` (421, 451, 550…)."""
        with self._lock:
            self._scripted.append(_Scripted(stage, code, text, times))

    def refuse_recipient(self, address: str, code: int = 550, text: str = "5.1.1 No such user") -> None:
        """Refuse RCPT TO this address (case-insensitive) until reset."""
        with self._lock:
            self._refused[address.lower()] = (code, text)

    def _take(self, stage: Stage) -> str | None:
        with self._lock:
            for scripted in self._scripted:
                if scripted.stage == stage:
                    scripted.times -= 1
                    if scripted.times <= 0:
                        self._scripted.remove(scripted)
                    self.rejected += 1
                    return f"{scripted.code} {scripted.text}"
        return None

    def _refusal(self, address: str) -> str | None:
        with self._lock:
            found = self._refused.get(address.lower())
            if found is None:
                return None
            self.rejected += 1
            return f"{found[0]} {found[1]}"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        # handled=False: aiosmtpd then answers a refusal with 535 itself
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    def _connection_of(self, session: Session) -> int:
        """A number per connection (aiosmtpd keeps one Session per connection)."""
        number = getattr(session, "sink_connection", None)
        if number is None:
            with self._lock:
                self._connections += 1
                number = self._connections
            session.sink_connection = number  # type: ignore[attr-defined]
        return int(number)

    def _record(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or cast(bytes, envelope.content)
        # Parsed as a mail client stores it, with \n line ends, so get_content() reads as written.
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        message = cast(EmailMessage, parsed)
        mail = ReceivedMail(
            sender=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos),
            raw=raw,
            message=message,
            message_id=message["Message-ID"],
            authenticated_as=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=server.transport is not None and server.transport.get_extra_info("sslcontext") is not None,
            connection=self._connection_of(session),
        )
        with self._lock:
            self._messages.append(mail)
            self._queue_ids += 1
            queue_id = f"Q{self._queue_ids:06d}"
        return f"250 2.0.0 Ok: queued as {queue_id}"


class _PortZeroController(Controller):
    """Controller on a free port: it binds port 0, then reads the port the OS chose."""

    bound_port: int = 0

    def __init__(self, handler: _Handler, *, implicit_tls: bool, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.implicit_tls = implicit_tls

    def factory(self) -> SMTP:
        server = super().factory()
        if self.implicit_tls:
            # To aiosmtpd "TLS" means STARTTLS: AUTH would wait for one on a connection that is
            # TLS from its first byte. (auth_require_tls=False at init would warn on each connection.)
            server._auth_require_tls = False
        return server

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.bound_port = self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def email_channel_settings(sink: SmtpSink, **overrides: Any) -> dict[str, Any]:
    """The settings of an Email channel that sends through `sink`, for POST /api/Channels."""
    security = {"starttls": "starttls", "ssl": "ssl", "plain": "none"}[sink.mode]
    settings: dict[str, Any] = {
        "smtpHost": sink.host,
        "smtpPort": sink.port,
        "smtpSecurity": security,
        "fromAddress": FROM_ADDRESS,
        "fromName": "Acme Support",
    }
    if sink.user:
        settings |= {"smtpUser": sink.user, "smtpPassword": sink.password}
    return settings | overrides


# --- fixtures (re-exported by tests/conftest.py) ----------------------------------------------


@pytest.fixture(scope="session")
def smtp_certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("smtp-tls"))


def _serve(mode: SinkMode, certificates: Certificates) -> Iterator[SmtpSink]:
    sink = SmtpSink(mode, certificates).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def _smtp_server_starttls(smtp_certificates: Certificates) -> Iterator[SmtpSink]:
    yield from _serve("starttls", smtp_certificates)


@pytest.fixture(scope="session")
def _smtp_server_ssl(smtp_certificates: Certificates) -> Iterator[SmtpSink]:
    yield from _serve("ssl", smtp_certificates)


@pytest.fixture(scope="session")
def _smtp_server_plain(smtp_certificates: Certificates) -> Iterator[SmtpSink]:
    yield from _serve("plain", smtp_certificates)


@pytest.fixture
def smtp_sink(_smtp_server_starttls: SmtpSink) -> Iterator[SmtpSink]:
    """STARTTLS required, then AUTH (agent / s3cret) required; recorded mail and scripts reset."""
    _smtp_server_starttls.reset()
    yield _smtp_server_starttls
    _smtp_server_starttls.reset()


@pytest.fixture
def smtp_sink_ssl(_smtp_server_ssl: SmtpSink) -> Iterator[SmtpSink]:
    """TLS from the first byte, AUTH (agent / s3cret) required."""
    _smtp_server_ssl.reset()
    yield _smtp_server_ssl
    _smtp_server_ssl.reset()


@pytest.fixture
def smtp_sink_plain(_smtp_server_plain: SmtpSink) -> Iterator[SmtpSink]:
    """No TLS, no AUTH: a local relay (Postfix on localhost:25)."""
    _smtp_server_plain.reset()
    yield _smtp_server_plain
    _smtp_server_plain.reset()
