"""Secrets at rest: channel passwords and tokens are stored encrypted, never as written.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under keys derived with HKDF-SHA256
from DESKPAL_SECRET_KEY, plus any older keys in DESKPAL_OLD_SECRET_KEYS: MultiFernet encrypts with
the first key and decrypts with any, so a key rotation is "set the new key, list the old one in
DESKPAL_OLD_SECRET_KEYS; each channel's secrets are sealed under the new key when it is next saved"
(README). A stored secret is `enc:v1:<token>`;
a value without that prefix is one written before encryption existed and reads as it is, until
the next write or rotation encrypts it.

The same keys also sign links deskpal puts in mail (`sign`/`verify`: HMAC-SHA256 under another
HKDF-derived key), so a link made before a rotation keeps working while its key is listed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
_INFO = b"deskpal channel secrets v1"
_MAC_INFO = b"deskpal link signatures v1"
TAG_BYTES = 16  # 128 bits: a forger's odds stay negligible, and a link stays short


class SecretUnreadable(RuntimeError):
    """A stored secret none of the configured keys opens (the key it was written with is gone)."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _mac_key(secret_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MAC_INFO).derive(secret_key.encode())


def _tag(key: bytes, purpose: str, data: str) -> str:
    # The purpose is part of what is signed: a tag made for one kind of link opens no other.
    digest = hmac.new(key, purpose.encode() + b"\0" + data.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:TAG_BYTES]).rstrip(b"=").decode()


class SecretBox:
    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()) -> None:
        old = [k for k in old_keys if k]
        self._box = MultiFernet([_fernet(secret_key), *(_fernet(k) for k in old)])
        self._mac_keys = [_mac_key(secret_key), *(_mac_key(k) for k in old)]

    def seal(self, value: str) -> str:
        """Encrypt what was written, whatever it looks like (a client's `enc:v1:…` is text too)."""
        return PREFIX + self._box.encrypt(value.encode()).decode()

    def open(self, stored: str) -> str:
        if not is_sealed(stored):
            return stored
        try:
            return self._box.decrypt(stored.removeprefix(PREFIX).encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable("no configured key opens this secret") from exc

    def sign(self, purpose: str, data: str) -> str:
        """A deterministic tag of `data` for `purpose` under the current key (urlsafe, 22 characters)."""
        return _tag(self._mac_keys[0], purpose, data)

    def verify(self, purpose: str, data: str, tag: str) -> bool:
        """Whether `tag` is sign(purpose, data) under the current key or an old one."""
        given = tag.encode()  # bytes: compare_digest refuses non-ASCII text, which a forger may send
        return any(hmac.compare_digest(_tag(key, purpose, data).encode(), given) for key in self._mac_keys)


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


_BOX: SecretBox | None = None


def configure(secret_key: str, old_keys: Iterable[str] = ()) -> SecretBox:
    """Set the process's box (the app, the worker and the command line call it at start)."""
    global _BOX
    _BOX = SecretBox(secret_key, old_keys)
    return _BOX


def box() -> SecretBox:
    if _BOX is None:
        raise RuntimeError("secretbox.configure() was not called: the process has no key")
    return _BOX
