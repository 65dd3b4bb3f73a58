"""Password hashing, opaque secrets and login tokens."""

from __future__ import annotations

import functools
import hashlib
import secrets
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


def issue_jwt(secret_key: str, *, rep_id: int, customer_id: int, ttl_seconds: int) -> tuple[str, datetime]:
    expires = utcnow() + timedelta(seconds=ttl_seconds)
    claims = {"sub": str(rep_id), "cid": customer_id, "exp": expires, "iat": utcnow(), "typ": "login"}
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM), expires


def read_jwt(secret_key: str, token: str) -> tuple[int, int] | None:
    """(rep_id, customer_id) of a valid, unexpired login token; None otherwise."""
    try:
        claims = jwt.decode(
            token, secret_key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "cid"]}
        )
        if claims.get("typ") != "login":
            return None
        return int(claims["sub"]), int(claims["cid"])
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
