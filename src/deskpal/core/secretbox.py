"""Secrets at rest: channel passwords and tokens are stored encrypted, never as written.

Fernet (AES-128-CBC with HMAC-SHA256, from `cryptography`) under keys derived with HKDF-SHA256
from DESKPAL_SECRET_KEY, plus any older keys in DESKPAL_OLD_SECRET_KEYS: MultiFernet encrypts with
the first key and decrypts with any, so a key rotation is "set the new key, list the old one in
DESKPAL_OLD_SECRET_KEYS; each channel's secrets are sealed under the new key when it is next saved"
(README). A stored secret is `enc:v1:<token>`;
a value without that prefix is one written before encryption existed and reads as it is, until
the next write or rotation encrypts it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"
_INFO = b"deskpal channel secrets v1"


class SecretUnreadable(RuntimeError):
    """A stored secret none of the configured keys opens (the key it was written with is gone)."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()) -> None:
        self._box = MultiFernet([_fernet(secret_key), *(_fernet(k) for k in old_keys if k)])

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
