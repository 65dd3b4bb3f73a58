"""The only code that speaks IMAP: connect, sign in, examine a folder, fetch by UID, IDLE, every
failure named.

Built on imap-tools (imaplib underneath), which is synchronous: each step runs in a thread of a
small pool of this module's own, and a step that is cancelled (a poll's time limit, a worker
stopping) shuts the socket down so that its thread ends at once instead of at the socket timeout.
Everything imap-tools, imaplib, the socket layer or ssl can raise becomes an `ImapFailure` that says
where the conversation broke (`stage`), what the server said (verbatim), whether trying again later
can help (`transient`) and what an admin should change (`advice()`), as smtp.SmtpFailure does.

The folder is opened read-only (EXAMINE) and bodies are fetched with BODY.PEEK[]: deskpal never
changes a flag, so the people who read the same mailbox in their own client see it as they left it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import imaplib
import os
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from imap_tools import MailBox, MailBoxUnencrypted, MailMessage
from imap_tools.errors import (
    MailboxFetchError,
    MailboxFolderSelectError,
    MailboxLoginError,
    UnexpectedCommandStatusError,
)

ImapSecurity = Literal["ssl", "starttls", "none"]
Stage = Literal["dns", "connect", "tls", "auth", "select", "fetch", "idle", "timeout", "protocol"]

DEFAULT_PORTS: dict[str, int] = {"ssl": 993, "starttls": 143, "none": 143}
DEFAULT_FOLDER = "INBOX"
DEFAULT_SECURITY: ImapSecurity = "ssl"  # RFC 8314: implicit TLS is what providers offer on 993

T = TypeVar("T")

# The threads the blocking steps run in: at most this many mailboxes talk at once per process.
# Not the event loop's default pool, which database drivers and file storage share.
_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="deskpal-imap")
# IDLE waits block a thread for up to DESKPAL_IMAP_IDLE_SECONDS: they get threads of their own, so
# that idling mailboxes never keep the others' polls waiting for a thread (config.imap_idle_max <= this).
IDLE_THREADS = 32
_IDLE_POOL = ThreadPoolExecutor(max_workers=IDLE_THREADS, thread_name_prefix="deskpal-imap-idle")
# An untagged answer that says the folder has more messages than before (RFC 3501, 7.3.1 and 7.3.2).
_NEW_MAIL = re.compile(rb"^\* \d+ (EXISTS|RECENT)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ImapConfig:
    host: str
    port: int | None  # None: 993 for ssl, 143 for starttls and none
    security: ImapSecurity  # channel setting imapSecurity; None in settings means "ssl"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    folder: str = DEFAULT_FOLDER
    timeout: float = 30.0
    ca_file: str | None = None  # an extra CA to trust: a private server's, the tests' self-signed one

    @property
    def resolved_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def server(self) -> str:
        return f"{self.host}:{self.resolved_port}"

    @property
    def account(self) -> str:
        return account_of(self.host, self.user)


def account_of(host: str, user: str | None) -> str:
    """Which mailbox this is, whatever port or transport reaches it: another one's UIDs mean
    nothing, so a change of account starts over from UID 0."""
    return f"{(user or '').strip()}@{host.strip().lower().rstrip('.')}"


def config_of(
    settings: Mapping[str, Any], *, ca_file: str | None = None, timeout: float = 30.0
) -> ImapConfig | None:
    """From a channel's settings with secrets opened (channels.service.secret_settings): None when
    imapHost is unset."""
    host = str(settings.get("imapHost") or "").strip()
    if not host:
        return None
    security: ImapSecurity = settings.get("imapSecurity") or DEFAULT_SECURITY
    if security not in DEFAULT_PORTS:
        raise ValueError(f"imapSecurity must be ssl, starttls or none, not {security!r}")
    return ImapConfig(
        host=host,
        port=settings.get("imapPort") or None,
        security=security,
        user=settings.get("imapUser") or None,
        password=settings.get("imapPassword") or None,
        folder=str(settings.get("imapFolder") or "").strip() or DEFAULT_FOLDER,
        timeout=timeout,
        ca_file=ca_file,
    )


class ImapFailure(Exception):
    """A poll or check that did not get through, and why."""

    def __init__(
        self,
        stage: Stage,
        text: str,
        *,
        transient: bool,
        server: str = "the IMAP server",
        reason: str | None = None,
        folders: Sequence[str] = (),
    ) -> None:
        super().__init__(text)
        self.stage: str = stage
        self.text = text
        self.transient = transient
        self.server = server
        # What kind of problem within the stage: "cert", "no-starttls", "ca-file" (tls); "no-user",
        # "login-disabled" (auth); "no-uidvalidity" (select); for a timeout, the stage it cut short.
        self.reason = reason
        self.folders = tuple(folders)  # a select failure: the folders the account does have

    def __str__(self) -> str:
        return f"{self.stage}: {self.text}"

    def __repr__(self) -> str:
        return f"ImapFailure({self.stage!r}, {self.text!r}, transient={self.transient})"

    def advice(self) -> str:
        """A sentence a helpdesk admin can act on."""
        return _advice(self)


def _advice(f: ImapFailure) -> str:
    host = f.server.rsplit(":", 1)[0]
    if f.stage == "dns":
        if f.transient:
            return (
                f"{host} could not be looked up just now ({f.text}); the poll is tried again later. If "
                "it persists, check the DNS resolver of the machine deskpal runs on."
            )
        return f"{host} does not exist in DNS ({f.text}): check imapHost, e.g. imap.gmail.com."
    if f.stage == "connect":
        return (
            f"Could not connect to {f.server} ({f.text}): check imapHost and imapPort (993 for SSL, 143 "
            "for STARTTLS or none) and that outgoing connections to that port are allowed."
        )
    if f.stage == "timeout":
        return (
            f"{f.server} did not answer in time ({f.text}): check imapPort and that a firewall allows "
            "outgoing connections to it; the poll is tried again later."
        )
    if f.stage == "tls":
        if f.reason == "no-starttls":
            return (
                f'{f.server} does not offer STARTTLS: set imapSecurity to "ssl" if this port expects TLS '
                'from the start (993), or "none" for a trusted local server.'
            )
        if f.reason == "cert":
            return (
                f"The TLS certificate of {host} was rejected ({f.text}): check that imapHost is the name on "
                "the server's certificate; a server with a private CA needs DESKPAL_IMAP_CA_FILE set to "
                "that CA's PEM file."
            )
        if f.reason == "ca-file":
            return f"The CA file DESKPAL_IMAP_CA_FILE names cannot be used ({f.text}): name a PEM file."
        return (
            f"TLS with {f.server} failed ({f.text}): the port may not speak TLS the way imapSecurity says; "
            'use "ssl" on 993 or "starttls" on 143.'
        )
    if f.stage == "auth":
        if f.reason == "no-user":
            return "No imapUser is set: set imapUser and imapPassword (the mailbox's sign-in)."
        if f.reason == "login-disabled":
            return (
                f"{f.server} refuses to sign in over an unencrypted connection: set imapSecurity to "
                '"starttls" (port 143) or "ssl" (port 993).'
            )
        if f.transient:
            return f"{f.server} cannot sign in just now ({f.text}); the poll is tried again later."
        return (
            f"{f.server} refused the sign-in ({f.text}): check imapUser/imapPassword; Gmail and Outlook "
            "need an app password (or IMAP access turned on for the account)."
        )
    if f.stage == "select":
        if f.reason == "no-uidvalidity":
            return f"{f.server} gave no UIDVALIDITY for the folder ({f.text}): it cannot be polled by UID."
        known = f" The account has: {', '.join(f.folders[:20])}." if f.folders else ""
        return f"{f.server} could not open the folder ({f.text}): check imapFolder (default INBOX).{known}"
    if f.stage == "fetch":
        return f"{f.server} did not hand over the mail ({f.text}); the poll is tried again later."
    if f.stage == "idle":
        return f"{f.server} broke off waiting for new mail (IDLE: {f.text}); the poll is tried again later."
    return f"The IMAP conversation with {f.server} failed ({f.text})."


@dataclass(frozen=True, slots=True)
class FolderState:
    """What EXAMINE told of the folder."""

    uidvalidity: int
    uidnext: int | None  # some servers do not say
    exists: int  # messages in the folder


@dataclass(frozen=True, slots=True)
class Pending:
    """A message not fetched yet: its UID and RFC822.SIZE (bytes, as the server counts them)."""

    uid: int
    size: int


@dataclass(frozen=True, slots=True)
class FetchedMail:
    uid: int
    raw: bytes  # BODY[] exactly as the server holds it


@dataclass(frozen=True, slots=True)
class ImapCheck:
    ok: bool
    stage: str | None  # where it failed, as ImapFailure.stage
    message: str  # "Connected to imap.example.com:993, …, folder INBOX: 12 messages." or the advice
    server_text: str | None  # the server's own words when it answered


class _RawMail(MailMessage):
    """A fetched mail as the server sent it: the bytes kept and imap-tools' own parsing skipped
    (the pipeline parses; parsing here would only cost time and could fail on broken mail)."""

    def __init__(self, fetch_data: list[Any]) -> None:  # no super().__init__: that parses
        raw, uid_data, flag_data = self._get_message_data_parts(fetch_data)
        self._raw_uid_data = uid_data
        self._raw_flag_data = flag_data
        self.raw: bytes = raw


class _SslBox(MailBox):
    email_message_class = _RawMail


class _PlainBox(MailBoxUnencrypted):
    email_message_class = _RawMail  # STARTTLS, when asked for, is started on it by _Session.open


@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    # Built once: loading the system's CA store costs milliseconds each connection would pay.
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


_PERMANENT_DNS = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME), socket.EAI_SERVICE}
# Response codes of a NO that a later attempt may not get (RFC 5530).
_TRANSIENT_CODES = ("[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]")


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").strip()
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value if v is not None).strip()
    return str(value).strip()


def _server_said(exc: UnexpectedCommandStatusError) -> str:
    status, data, *_ = (*tuple(exc.command_result), None, None)
    said = _text(data)
    return said or f"answered {_text(status)}"


def _as_failure(exc: BaseException, stage: Stage, config: ImapConfig) -> ImapFailure:
    """What went wrong, in `stage` of the conversation with `config`'s server."""
    server = config.server
    if isinstance(exc, ImapFailure):
        return exc
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            text = cause.verify_message or str(cause)
            return ImapFailure("tls", text, transient=False, server=server, reason="cert")
        if isinstance(cause, ssl.SSLError):
            return ImapFailure("tls", cause.reason or str(cause), transient=False, server=server)
        if isinstance(cause, socket.gaierror):
            transient = cause.errno not in _PERMANENT_DNS
            return ImapFailure("dns", cause.strerror or str(cause), transient=transient, server=server)
    if isinstance(exc, TimeoutError):
        text = str(exc) if str(exc) and str(exc) != "timed out" else f"no answer within {config.timeout:g} s"
        return ImapFailure("timeout", text, transient=True, server=server, reason=stage)
    if isinstance(exc, MailboxLoginError):
        said = _server_said(exc)
        return ImapFailure("auth", said, transient=said.startswith(_TRANSIENT_CODES), server=server)
    if isinstance(exc, MailboxFolderSelectError):
        said = _server_said(exc)
        return ImapFailure("select", said, transient=said.startswith(_TRANSIENT_CODES), server=server)
    if isinstance(exc, MailboxFetchError | UnexpectedCommandStatusError):
        return ImapFailure(
            stage if stage != "connect" else "protocol", _server_said(exc), transient=True, server=server
        )
    if isinstance(exc, imaplib.IMAP4.abort):  # the connection broke or the server said BYE
        return ImapFailure(
            stage, f"the connection was lost ({_text(exc.args)})", transient=True, server=server
        )
    if isinstance(exc, imaplib.IMAP4.error):  # a BAD, a NO where imaplib expects OK, a bad greeting
        text = _text(exc.args) or type(exc).__name__
        if stage == "auth":
            return ImapFailure("auth", text, transient=text.startswith(_TRANSIENT_CODES), server=server)
        return ImapFailure(stage if stage != "connect" else "protocol", text, transient=False, server=server)
    if isinstance(exc, OSError):  # refused, reset, unreachable; or a socket shut by a cancelled step
        errno = next((c.errno for c in _causes(exc) if isinstance(c, OSError) and c.errno), None)
        text = os.strerror(errno) if errno else (str(exc) or type(exc).__name__)
        return ImapFailure(stage, text, transient=True, server=server)
    # A password imaplib cannot quote, an answer it cannot read: never worth a retry as it is.
    return ImapFailure("protocol", f"{type(exc).__name__}: {exc}", transient=False, server=server)


_FETCH_ITEM = re.compile(rb"\bUID (\d+)\b.*?\bRFC822\.SIZE (\d+)|\bRFC822\.SIZE (\d+)\b.*?\bUID (\d+)\b")


def _pending_of(lines: Sequence[Any], after_uid: int) -> list[Pending]:
    """The UIDs above `after_uid` in a `UID FETCH n:* (UID RFC822.SIZE)` answer, ascending.

    `n:*` always names the folder's last message, even when its UID is below n (RFC 3501, 6.4.8):
    the filter drops it.
    """
    found: dict[int, int] = {}
    for line in lines:
        if isinstance(line, tuple):
            line = line[0]
        if not isinstance(line, bytes):
            continue
        match = _FETCH_ITEM.search(line)
        if match is None:
            continue
        uid, size = (match.group(1), match.group(2)) if match.group(1) else (match.group(4), match.group(3))
        if int(uid) > after_uid:
            found[int(uid)] = int(size)
    return [Pending(uid, found[uid]) for uid in sorted(found)]


class ImapSession:
    """One connection, walked step by step so that a failure knows where it happened.

    Every step runs in a thread of `_POOL`; cancelling a step's await shuts the socket so that the
    thread ends. `close()` must be awaited in every case (a `finally`).
    """

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self.stage: Stage = "connect"
        self.greeting: str | None = None
        self.capabilities: frozenset[str] = frozenset()
        self._box: MailBox | MailBoxUnencrypted | None = None

    # --- the steps, each in a thread ------------------------------------------------------------

    async def open(self) -> None:
        """Connect, TLS as configured, sign in."""
        await self._step("connect", self._open)

    async def examine(self, folder: str | None = None) -> FolderState:
        """Open the folder read-only; UIDVALIDITY, UIDNEXT and how many messages it holds."""
        return await self._step("select", self._examine, folder or self.config.folder)

    async def pending(self, after_uid: int) -> list[Pending]:
        """The messages whose UID is above `after_uid`, ascending, with their sizes."""
        return await self._step("fetch", self._pending, after_uid)

    async def fetch(self, uids: Sequence[int]) -> list[FetchedMail]:
        """These messages' raw bytes (BODY.PEEK[]: no flag changes), ascending by UID. A UID the
        folder no longer holds (expunged meanwhile) is left out."""
        if not uids:
            return []
        return await self._step("fetch", self._fetch, list(uids))

    async def idle(self, seconds: float) -> bool:
        """Wait in IDLE (RFC 2177) for up to `seconds`: True as soon as the server announces
        new mail (EXISTS, RECENT) or wakes the wait otherwise, False when the time ran out quietly.
        Also True at once when an answer to an earlier command of the round already announced new
        mail (it arrived after the UIDs were listed). Needs the folder examined and IDLE among the
        capabilities. Cancelling it drops the connection."""
        return await self._step("idle", self._idle, seconds, pool=_IDLE_POOL)

    async def folders(self) -> list[str]:
        """The account's folder names (for the advice when imapFolder names none of them)."""
        return await self._step("select", self._folders)

    async def close(self, *, polite: bool = True) -> None:
        """LOGOUT (polite, bounded by a few seconds) or just drop the connection."""
        box, self._box = self._box, None
        if box is None:
            return
        if polite:
            try:
                await asyncio.wait_for(_in_pool(_logout, box), timeout=min(self.config.timeout, 5.0))
                return
            except Exception:
                pass  # what was fetched is fetched; a rude goodbye changes nothing
            except asyncio.CancelledError:
                _shut(box)
                raise
        _shut(box)

    # --- what runs in the thread ----------------------------------------------------------------

    def _open(self) -> None:
        config = self.config
        context: ssl.SSLContext | None = None
        if config.security != "none":
            self.stage = "tls"
            try:
                context = _tls_context(config.ca_file)
            except (OSError, ValueError) as exc:
                raise ImapFailure(
                    "tls", str(exc), transient=False, server=config.server, reason="ca-file"
                ) from exc
        # A refused connection is "connect" even for ssl; a failed handshake is found to be "tls"
        # by its ssl exception (_as_failure).
        self.stage = "connect"
        box: MailBox | MailBoxUnencrypted
        if config.security == "ssl":
            box = _SslBox(config.host, config.resolved_port, timeout=config.timeout, ssl_context=context)
        else:
            box = _PlainBox(config.host, config.resolved_port, timeout=config.timeout)
        self._box = box
        client = box.client
        self.greeting = _text(client.welcome)
        if config.security == "starttls":
            self.stage = "tls"
            if "STARTTLS" not in client.capabilities:
                raise ImapFailure(
                    "tls",
                    "the server does not offer STARTTLS",
                    transient=False,
                    server=config.server,
                    reason="no-starttls",
                )
            client.starttls(context)  # asks CAPABILITY again over TLS (RFC 3501, 6.2.1)
        self.stage = "auth"
        if not config.user:
            raise ImapFailure(
                "auth", "imapUser is not set", transient=False, server=config.server, reason="no-user"
            )
        if "LOGINDISABLED" in client.capabilities:
            raise ImapFailure(
                "auth",
                "the server offers no sign-in on an unencrypted connection (LOGINDISABLED)",
                transient=False,
                server=config.server,
                reason="login-disabled",
            )
        password = config.password or ""
        if (config.user + password).isascii():
            box.login(config.user, password, initial_folder=None)
        else:  # LOGIN's quoted strings are ASCII; AUTHENTICATE PLAIN carries UTF-8
            box.login_utf8(config.user, password, initial_folder=None)
        self.capabilities = frozenset(str(c).upper() for c in client.capabilities)

    def _examine(self, folder: str) -> FolderState:
        box = self._require()
        box.folder.set(folder, readonly=True)
        client = box.client
        uidvalidity = _first_int(client.untagged_responses.get("UIDVALIDITY"))
        if uidvalidity is None:
            raise ImapFailure(
                "select",
                f"EXAMINE {folder} answered without UIDVALIDITY",
                transient=False,
                server=self.config.server,
                reason="no-uidvalidity",
            )
        state = FolderState(
            uidvalidity=uidvalidity,
            uidnext=_first_int(client.untagged_responses.get("UIDNEXT")),
            exists=_first_int(client.untagged_responses.get("EXISTS")) or 0,
        )
        # Taken: an EXISTS imaplib collects from now on announces mail newer than this (see _idle).
        for name in ("EXISTS", "RECENT"):
            client.untagged_responses.pop(name, None)
        return state

    def _pending(self, after_uid: int) -> list[Pending]:
        client = self._require().client
        status, lines = client.uid("FETCH", f"{after_uid + 1}:*", "(UID RFC822.SIZE)")
        if status != "OK":
            raise MailboxFetchError((status, lines), "OK")
        return _pending_of(lines or [], after_uid)

    def _fetch(self, uids: list[int]) -> list[FetchedMail]:
        box = self._require()
        got = {
            int(mail.uid): mail.raw
            for mail in box.fetch(uid_list=[str(u) for u in uids], mark_seen=False, bulk=True)
            if isinstance(mail, _RawMail) and mail.uid is not None
        }
        return [FetchedMail(uid, got[uid]) for uid in sorted(got)]

    def _idle(self, timeout: float) -> bool:
        box = self._require()
        client = box.client
        # imaplib keeps the untagged answers to the round's FETCHes: an EXISTS among them is mail
        # that came after the UIDs were listed, which an IDLE started now would not announce.
        announced = [client.untagged_responses.pop(name, None) for name in ("EXISTS", "RECENT")]
        if any(announced):
            return True
        deadline = time.monotonic() + timeout
        box.idle.start()  # type: ignore[no-untyped-call]  # imap-tools leaves it unannotated
        woken = False
        try:
            while (left := deadline - time.monotonic()) > 0:
                lines = box.idle.poll(timeout=left)
                if any(_NEW_MAIL.match(line) for line in lines if isinstance(line, bytes)):
                    woken = True
                    break
                if not lines and deadline - time.monotonic() > 0.05:
                    # Woken with nothing to read: imap-tools returns so on EOF too. DONE below
                    # finds out (a lost connection raises); otherwise a look at the folder is cheap.
                    woken = True
                    break
                # Anything else (a FETCH of flags another client changed, a keep-alive OK): wait on.
        finally:
            # What the server says until it ends IDLE, imaplib collects (looked at below).
            box.idle.stop()  # type: ignore[no-untyped-call]
        return any([woken, *(client.untagged_responses.pop(name, None) for name in ("EXISTS", "RECENT"))])

    def _folders(self) -> list[str]:
        return [f.name for f in self._require().folder.list()]

    def _require(self) -> MailBox | MailBoxUnencrypted:
        if self._box is None:
            raise ImapFailure("protocol", "not connected", transient=True, server=self.config.server)
        return self._box

    # --- running a step -------------------------------------------------------------------------

    async def _step(
        self, stage: Stage, fn: Callable[..., T], *args: Any, pool: ThreadPoolExecutor = _POOL
    ) -> T:
        self.stage = stage
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except asyncio.CancelledError:
            if self._box is not None:
                _shut(self._box)  # the thread's read fails at once; close() has nothing left to say
                self._box = None
            raise
        except Exception as exc:
            raise _as_failure(exc, self.stage, self.config) from exc


async def _in_pool(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


def _logout(box: MailBox | MailBoxUnencrypted) -> None:
    try:
        box.client.logout()  # imaplib closes the socket whatever the server answers
    except (imaplib.IMAP4.error, OSError):
        _shut(box)


def _shut(box: MailBox | MailBoxUnencrypted) -> None:
    """Drop the connection from any thread: a read blocked on it returns at once."""
    sock = getattr(box.client, "sock", None)
    if sock is None:
        return
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _first_int(values: Any) -> int | None:
    for value in values or ():
        text = _text(value).split(" ", 1)[0]
        if text.isdigit():
            return int(text)
    return None


_SECURITY_WORDS = {"ssl": "TLS from the start (SSL)", "starttls": "STARTTLS", "none": "no encryption"}


async def check(config: ImapConfig) -> ImapCheck:
    """Connect, TLS as configured, sign in, EXAMINE the folder, LOGOUT: what test-imap reports.
    Never raises (but for cancellation)."""
    session = ImapSession(config)
    try:
        await session.open()
        try:
            state = await session.examine()
        except ImapFailure as failure:
            if failure.stage == "select" and failure.reason is None:
                with contextlib.suppress(ImapFailure):
                    failure.folders = tuple(await session.folders())
            raise
    except ImapFailure as failure:
        await session.close()
        said = failure.text if failure.stage in {"auth", "select", "fetch", "protocol"} else None
        return ImapCheck(ok=False, stage=failure.stage, message=failure.advice(), server_text=said)
    except BaseException:
        await session.close(polite=False)
        raise
    await session.close()
    parts = [f"Connected to {config.server}", _SECURITY_WORDS[config.security], f"signed in as {config.user}"]
    count = "1 message" if state.exists == 1 else f"{state.exists} messages"
    message = ", ".join(parts) + f"; folder {config.folder}: {count} (UIDVALIDITY {state.uidvalidity})."
    if "IDLE" in session.capabilities:
        message += " The server offers IDLE."
    if config.security == "none" and "STARTTLS" in session.capabilities:
        message += ' The server offers STARTTLS: imapSecurity "starttls" would encrypt the connection.'
    return ImapCheck(ok=True, stage=None, message=message, server_text=session.greeting)
