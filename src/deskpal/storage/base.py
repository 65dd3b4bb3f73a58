"""The storage interface every back end implements, and what both back ends share."""

from __future__ import annotations

import abc
import logging
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from deskpal.core.errors import PayloadTooLarge

CHUNK_BYTES = 256 * 1024  # per read: one thread hop each, so not too small

# Keys are made by deskpal (a fixed prefix, a customer id and a random uuid), never from user input;
# this pattern refuses anything else, so that no key can climb out of the storage root.
_KEY = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")


class BlobNotFound(LookupError):
    """No blob is stored under this key."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or len(key) > 200:
        raise ValueError(f"not a storage key: {key!r}")
    return key


def new_key(prefix: str) -> str:
    return check_key(f"{prefix}/{uuid.uuid4().hex}")


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    size: int


@dataclass(frozen=True, slots=True)
class BlobInfo:
    key: str
    size: int
    modified_at: datetime  # aware UTC


class BlobReader(abc.ABC):
    """An opened byte range: iterate for its chunks; closing early releases the file or connection."""

    def __init__(self, length: int) -> None:
        self.length = length

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[bytes]: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...


class Storage(abc.ABC):
    """Where deskpal keeps file bytes (attachments, call recordings). Blobs are written once and never
    changed: a new version is a new key."""

    # How old a blob no row references must be before the sweeper removes it (an upload in flight
    # has no row yet). Set from DESKPAL_STORAGE_ORPHAN_GRACE_SECONDS.
    orphan_grace_seconds: int = 3600

    @property
    @abc.abstractmethod
    def locator(self) -> str:
        """Names this store (file:///… or s3://bucket/prefix) in job payloads, without secrets."""

    @abc.abstractmethod
    async def put(self, prefix: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        """Stream chunks into a new blob under prefix. Past max_bytes: PayloadTooLarge, nothing kept."""

    @abc.abstractmethod
    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        """Open bytes start..end (inclusive; end None: to the last byte). BlobNotFound if absent."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; an absent one is not an error (deletes are retried)."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with prefix + '/'."""

    async def read_all(self, key: str) -> bytes:
        """Small blobs only (tests, tooling)."""
        reader = await self.open(key)
        try:
            return b"".join([chunk async for chunk in reader])
        finally:
            await reader.aclose()

    async def aclose(self) -> None:  # noqa: B027 - optional for back ends without resources
        """Release connections; the app calls it at shutdown."""


def too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the file exceeds the limit of {max_bytes} bytes ({max_bytes // (1024 * 1024)} MB)"
    )


@asynccontextmanager
async def dropped_unless_recorded(storage: Storage, key: str) -> AsyncIterator[None]:
    """Around the transaction that records a blob just stored: if it fails, the blob goes at once
    (a failed delete is only logged: the orphan sweeper removes it after its grace period)."""
    try:
        yield
    except BaseException:
        try:
            await storage.delete(key)
        except Exception:
            logging.getLogger(__name__).warning("could not delete orphaned blob %s", key, exc_info=True)
        raise
