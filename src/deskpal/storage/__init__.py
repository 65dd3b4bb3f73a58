"""Where file bytes live: one interface, a local-disk and an S3-compatible back end.

The app builds its storage once from the settings (app.state.storage). Jobs that outlive a request
name their storage by its locator and get it back with storage_for(), so a worker process that never
built an app reaches the same store.
"""

from __future__ import annotations

from deskpal.config import Settings
from deskpal.storage.base import (
    BlobInfo,
    BlobNotFound,
    BlobReader,
    Storage,
    StoredBlob,
    check_key,
    new_key,
)
from deskpal.storage.local import LocalStorage

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobReader",
    "LocalStorage",
    "Storage",
    "StoredBlob",
    "build_storage",
    "check_key",
    "new_key",
    "register",
    "storage_for",
]

_OPEN: dict[str, Storage] = {}


def register(storage: Storage) -> Storage:
    """Make this instance the one jobs naming its locator use (in this process)."""
    _OPEN[storage.locator] = storage
    return storage


def _from_url(url: str, settings: Settings) -> Storage:
    if url.startswith("s3://"):
        from deskpal.storage.s3 import S3Storage

        return S3Storage.from_url(url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    if url.startswith("file://"):
        from pathlib import Path
        from urllib.parse import unquote, urlsplit

        return LocalStorage(Path(unquote(urlsplit(url).path)))
    raise ValueError(f"unsupported storage URL {url!r}: use s3://bucket[/prefix] or file:///path")


def build_storage(settings: Settings) -> Storage:
    """The storage DESKPAL_STORAGE_URL names; by default files under <DESKPAL_DATA_DIR>/files."""
    if settings.storage_url:
        storage = _from_url(settings.storage_url, settings)
    else:
        storage = LocalStorage(settings.data_dir / "files")
    storage.orphan_grace_seconds = settings.storage_orphan_grace_seconds
    return register(storage)


def storage_for(locator: str, settings: Settings | None = None) -> Storage:
    """The storage a job payload names: this process's instance, else one built from the locator."""
    found = _OPEN.get(locator)
    if found is None:
        found = register(_from_url(locator, settings or Settings()))
    return found
