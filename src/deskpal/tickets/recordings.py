"""Call recordings of phone tickets, stored as files under the data dir.

A recording is written to its final place before the ticket row points at it ("blob before row"):
a failed request leaves at most an unreferenced file, never a row without its file. Replaced and
deleted recordings stay on disk until a sweeper removes files no ticket references (the storage
work of issue 5 brings that sweeper; `orphaned_files` says which files it may remove).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import anyio

from deskpal.core.errors import PayloadTooLarge

MAX_RECORDING_BYTES = 100 * 1024 * 1024


def recordings_dir(data_dir: Path, customer_id: int) -> Path:
    return data_dir / "recordings" / str(customer_id)


def path_of(data_dir: Path, customer_id: int, key: str) -> Path:
    # Keys are made here (uuid hex), never taken from a request: no path traversal.
    return recordings_dir(data_dir, customer_id) / key


async def store(data_dir: Path, customer_id: int, chunks: AsyncIterator[bytes]) -> tuple[str, int]:
    """Stream a recording to disk; returns its key and size. Over the limit: 413, nothing kept."""
    folder = recordings_dir(data_dir, customer_id)
    folder.mkdir(parents=True, exist_ok=True)
    key = uuid.uuid4().hex
    final = folder / key
    partial = folder / f".{key}.part"
    size = 0
    try:
        async with await anyio.open_file(partial, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > MAX_RECORDING_BYTES:
                    raise PayloadTooLarge(f"a recording may be at most {MAX_RECORDING_BYTES} bytes")
                await fh.write(chunk)
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return key, size


def orphaned_files(data_dir: Path, customer_id: int, referenced: Iterable[str]) -> list[Path]:
    keep = set(referenced)
    folder = recordings_dir(data_dir, customer_id)
    if not folder.exists():
        return []
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in keep]
