"""The tests' IMAP server: Debian's Dovecot, started once per test session on free ports.

Its own configuration, state and maildirs live in a throw-away directory; the accounts are a
passwd-file made in advance, and each test takes fresh ones (nothing to clean between tests).
Dovecot refuses mail access as root (a mail user's UID must not be 0), so when the tests run as root
the whole server runs as `nobody`; otherwise as the user running the tests. One port speaks plain
IMAP and offers STARTTLS, the other IMAPS (TLS from the first byte), both with the certificate the
SMTP tests' CA signed (tests/mail/smtp_sink.py: trust `ca_file`).

Mail is delivered the way any client would put it there: APPEND over IMAP, as the account.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.mail.smtp_sink import Certificates

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"

_CONFIG = """\
instance_name = deskpal-tests-{tag}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/tls/server.pem
ssl_key = <{root}/tls/server-key.pem
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
# The tests sign in over plain IMAP too (imapSecurity "none").
disable_plaintext_auth = no
auth_mechanisms = plain login
# A refused sign-in answers at once: the tests of a refusing server need no two-second pause.
auth_failure_delay = 0
first_valid_uid = 1
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
  default_fields = uid={uid} gid={gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  # One long-lived login process for every connection: no fork per test connection.
  service_count = 0
  process_min_avail = 1
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No auth penalty (Dovecot slows sign-ins from an address after failures, up to 15 s): the
  # tests of a refusing server sign in wrongly on purpose, from the one address all tests share.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""

POOL = 200  # accounts made at a time
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runs_as() -> pwd.struct_passwd:
    return pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


class Dovecot:
    """One running server: `host`, `port` (plain IMAP, STARTTLS offered), `ssl_port` (IMAPS),
    `ca_file` (the CA its certificate chains to)."""

    def __init__(self, certificates: Certificates) -> None:
        self.host = "127.0.0.1"
        self.ca_file = certificates.ca_file
        self.root = Path(tempfile.mkdtemp(prefix="deskpal-dovecot-"))
        self.port = 0
        self.ssl_port = 0
        self._certificates = certificates
        self._proc: subprocess.Popen[bytes] | None = None
        self._accounts: dict[str, str] = {}
        self._unused: list[str] = []

    # --- the server -----------------------------------------------------------------------------

    def start(self, attempts: int = 5) -> Dovecot:
        account = _runs_as()
        (self.root / "tls").mkdir()
        for name in ("run", "state", "home"):
            (self.root / name).mkdir()
        shutil.copy(self._certificates.cert_file, self.root / "tls" / "server.pem")
        shutil.copy(self._certificates.key_file, self.root / "tls" / "server-key.pem")
        self._add_accounts(POOL)  # made before the start: the passwd-file is read then (see add_account)
        for _ in range(attempts):  # a free port may be taken between the look and the bind
            self.port, self.ssl_port = _free_port(), _free_port()
            (self.root / "dovecot.conf").write_text(
                _CONFIG.format(
                    tag=uuid.uuid4().hex[:8],
                    root=self.root,
                    user=account.pw_name,
                    group=_group_name(account.pw_gid),
                    uid=account.pw_uid,
                    gid=account.pw_gid,
                    port=self.port,
                    ssl_port=self.ssl_port,
                )
            )
            _own(self.root, account)
            kwargs: dict[str, Any] = {}
            if os.geteuid() == 0:
                kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
            self._proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                **kwargs,
            )
            if self._wait_ready():
                return self
            self.stop(keep_files=True)
        raise RuntimeError(f"Dovecot did not start:\n{self.log()}")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                client = imaplib.IMAP4(self.host, self.port, timeout=2)
                client.shutdown()
                with socket.create_connection((self.host, self.ssl_port), timeout=2):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self, *, keep_files: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    # --- accounts -------------------------------------------------------------------------------

    def add_account(self) -> ImapAccount:
        """A new, empty mailbox of its own (a fresh user and password)."""
        if not self._unused:
            self._add_accounts(POOL)
            # Dovecot looks at the passwd-file at most once a second: a sign-in in the second it
            # last looked would not see the new accounts yet.
            time.sleep(1.1)
        user = self._unused.pop(0)
        return ImapAccount(self, user, self._accounts[user])

    def _add_accounts(self, n: int) -> None:
        for _ in range(n):
            user = f"u{uuid.uuid4().hex[:10]}"
            self._accounts[user] = f"pw-{uuid.uuid4().hex[:8]}"
            self._unused.append(user)
        self._write_passwd()

    def _write_passwd(self) -> None:
        path = self.root / "passwd"
        lines = "".join(f"{user}:{{PLAIN}}{password}::::::\n" for user, password in self._accounts.items())
        staged = path.with_suffix(".new")
        staged.write_text(lines)
        if os.geteuid() == 0:
            account = _runs_as()
            os.chown(staged, account.pw_uid, account.pw_gid)
        staged.replace(path)


@dataclass
class ImapAccount:
    server: Dovecot
    user: str
    password: str

    @contextlib.contextmanager
    def client(self, folder: str | None = None) -> Iterator[imaplib.IMAP4]:
        """Signed in over plain IMAP; `folder` selected read-write when given."""
        client = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        try:
            client.login(self.user, self.password)
            if folder is not None:
                _ok(client.select(_quote(folder)), f"SELECT {folder}")
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def deliver(self, raw: bytes, *, folder: str = "INBOX", seen: bool = False) -> int:
        """APPEND a mail; returns its UID."""
        with self.client() as client:
            status, data = client.append(_quote(folder), r"(\Seen)" if seen else None, None, raw)
            _ok((status, data), f"APPEND to {folder}")
        match = _APPENDUID.search(b" ".join(d for d in data if isinstance(d, bytes)))
        assert match, f"no APPENDUID in {data!r}"
        return int(match.group(2))

    def deliver_many(self, mails: list[bytes], *, folder: str = "INBOX") -> list[int]:
        """APPEND each mail, on one connection; their UIDs."""
        uids = []
        with self.client() as client:
            for raw in mails:
                status, data = client.append(_quote(folder), None, None, raw)
                _ok((status, data), f"APPEND to {folder}")
                match = _APPENDUID.search(b" ".join(d for d in data if isinstance(d, bytes)))
                assert match, f"no APPENDUID in {data!r}"
                uids.append(int(match.group(2)))
        return uids

    def mark_seen(self, uid: int, *, folder: str = "INBOX") -> None:
        """Set \\Seen, as another mail client reading it would."""
        with self.client(folder) as client:
            _ok(client.uid("STORE", str(uid), "+FLAGS", r"(\Seen)"), "STORE")

    def flags(self, uid: int, *, folder: str = "INBOX") -> str:
        with self.client() as client:
            _ok(client.select(_quote(folder), readonly=True), "EXAMINE")
            status, data = client.uid("FETCH", str(uid), "(FLAGS)")
            _ok((status, data), "FETCH FLAGS")
        return b" ".join(d for d in data if isinstance(d, bytes)).decode()

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            _ok(client.create(_quote(folder)), f"CREATE {folder}")

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            _ok(client.select(_quote(folder), readonly=True), "EXAMINE")
            return int(client.untagged_responses["UIDVALIDITY"][0])

    def reset_uidvalidity(self, folder: str) -> int:
        """Delete the folder and make it again with the same mail (as a server restored from a
        backup, or a migrated mailbox, does): every message gets a new UID under a new UIDVALIDITY.
        Not INBOX (which IMAP cannot delete). Returns the new UIDVALIDITY."""
        if folder.upper() == "INBOX":
            raise ValueError("INBOX cannot be deleted: reset the UIDVALIDITY of another folder")
        with self.client(folder) as client:
            status, data = client.uid("FETCH", "1:*", "(BODY.PEEK[] FLAGS)")
            _ok((status, data), "FETCH")
            mails = [item for item in data if isinstance(item, tuple)]
            client.close()
            _ok(client.delete(_quote(folder)), f"DELETE {folder}")
            _ok(client.create(_quote(folder)), f"CREATE {folder}")
            for head, raw in mails:
                seen = rb"\Seen" in head
                _ok(client.append(_quote(folder), r"(\Seen)" if seen else None, None, raw), "APPEND")
        return self.uidvalidity(folder)

    def channel_settings(self, security: str = "starttls", **overrides: Any) -> dict[str, Any]:
        """The IMAP settings of an Email channel that polls this account."""
        port = self.server.ssl_port if security == "ssl" else self.server.port
        settings: dict[str, Any] = {
            "imapHost": self.server.host,  # 127.0.0.1: a name the certificate carries
            "imapPort": port,
            "imapSecurity": security,
            "imapUser": self.user,
            "imapPassword": self.password,
        }
        return settings | overrides


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(result: tuple[str, Any], what: str) -> None:
    status, data = result
    assert status == "OK", f"{what}: {status} {data!r}"


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _own(root: Path, account: pwd.struct_passwd) -> None:
    if os.geteuid() != 0:
        return
    root.chmod(0o755)
    for path in [root, *root.rglob("*")]:
        os.chown(path, account.pw_uid, account.pw_gid)
