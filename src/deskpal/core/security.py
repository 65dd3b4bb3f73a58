"""Password hashing, opaque secrets and login tokens."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from deskpal.core.db import utcnow


@functools.cache
def _hasher() -> PasswordHash:
    from deskpal.config import Settings

    settings = Settings()
    return PasswordHash(
        (Argon2Hasher(time_cost=settings.argon2_time_cost, memory_cost=settings.argon2_memory_kib),)
    )


@functools.cache
def _dummy_hash() -> str:
    # Compared against when the account is unknown, so that a miss costs as long as a wrong password.
    return _hasher().hash("deskpal-timing-equaliser")


API_KEY_PREFIX = "dpk_"
PHONE_TOKEN_PREFIX = "dpp_"
JWT_ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    if password_hash is None:
        _hasher().verify(password, _dummy_hash())
        return False
    return _hasher().verify(password, password_hash)


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: nobody can brute-force the preimage.
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token_key() -> str:
    """A representative's login-token key: random, so that it names one rep for ever (ids may be
    reused by a database that lost its sequence; a key never is), and replaced whenever that rep's
    tokens must stop working."""
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class LoginClaims:
    rep_id: int
    customer_id: int
    token_key: str


def issue_jwt(
    secret_key: str, *, rep_id: int, customer_id: int, token_key: str, ttl_seconds: int
) -> tuple[str, datetime]:
    expires = utcnow() + timedelta(seconds=ttl_seconds)
    claims = {
        "sub": str(rep_id),
        "cid": customer_id,
        "key": token_key,
        "exp": expires,
        "iat": utcnow(),
        "typ": "login",
    }
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM), expires


def read_jwt(secret_key: str, token: str) -> LoginClaims | None:
    """The claims of a valid, unexpired login token; None otherwise.

    The token is valid for its rep only while `key` is still that rep's token key (checked by the
    authenticator, which reads the rep); a token issued before keys existed has none and is refused.
    """
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "sub", "cid", "key"]},
        )
        if claims.get("typ") != "login" or not isinstance(claims["key"], str) or not claims["key"]:
            return None
        return LoginClaims(int(claims["sub"]), int(claims["cid"]), claims["key"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
