"""Blobs as files under one directory (by default <DESKPAL_DATA_DIR>/files)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from deskpal.storage.base import (
    CHUNK_BYTES,
    BlobInfo,
    BlobNotFound,
    BlobReader,
    Storage,
    StoredBlob,
    check_key,
    new_key,
    too_large,
)

# Writes go to disk in batches this big: one thread hop per batch, not per network chunk.
WRITE_BATCH = 1024 * 1024


class _FileReader(BlobReader):
    def __init__(self, fh: BinaryIO, length: int) -> None:
        super().__init__(length)
        self._fh = fh

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.length
        try:
            while left > 0:
                chunk = await anyio.to_thread.run_sync(self._fh.read, min(CHUNK_BYTES, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._fh.close()


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # Partial uploads live beside the blobs (same file system, so the final rename is atomic)
        # under a name no key can have ('.' is not a key character).
        self.partial_dir = self.root / ".partial"

    @property
    def locator(self) -> str:
        return self.root.as_uri()

    def path_of(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, prefix: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        key = new_key(prefix)
        final = self.path_of(key)
        partial = self.partial_dir / f"{uuid.uuid4().hex}.part"
        await anyio.to_thread.run_sync(self._make_dirs, final.parent)
        size = 0
        try:
            fh = await anyio.to_thread.run_sync(partial.open, "wb")
            try:
                batch = bytearray()
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large(max_bytes)
                    batch += chunk
                    if len(batch) >= WRITE_BATCH:
                        await anyio.to_thread.run_sync(fh.write, batch)
                        batch = bytearray()
                if batch:
                    await anyio.to_thread.run_sync(fh.write, batch)
                await anyio.to_thread.run_sync(self._sync, fh)
            finally:
                fh.close()
            # Atomic: a reader sees no blob or the whole blob, never a part.
            await anyio.to_thread.run_sync(os.replace, partial, final)
        finally:
            await anyio.to_thread.run_sync(lambda: partial.unlink(missing_ok=True))
        return StoredBlob(key, size)

    def _make_dirs(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def _sync(fh: BinaryIO) -> None:
        fh.flush()
        os.fsync(fh.fileno())

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        path = self.path_of(key)

        def _open() -> tuple[BinaryIO, int]:
            try:
                fh = path.open("rb")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
                raise BlobNotFound(key) from exc
            size = os.fstat(fh.fileno()).st_size
            last = size - 1 if end is None else min(end, size - 1)
            fh.seek(start)
            return fh, max(0, last - start + 1)

        fh, length = await anyio.to_thread.run_sync(_open)
        return _FileReader(fh, length)

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        await anyio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def exists(self, key: str) -> bool:
        return await anyio.to_thread.run_sync(self.path_of(key).is_file)

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        folder = self.path_of(prefix)

        def _scan() -> list[BlobInfo]:
            if not folder.is_dir():
                return []
            found = []
            for path in folder.rglob("*"):
                if path.is_file() and not path.name.startswith("."):
                    stat = path.stat()
                    key = path.relative_to(self.root).as_posix()
                    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
                    found.append(BlobInfo(key, stat.st_size, modified))
            return found

        for info in await anyio.to_thread.run_sync(_scan):
            yield info
