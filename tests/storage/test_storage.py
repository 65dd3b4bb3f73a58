"""The storage interface, on local disk and on an S3-compatible server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deskpal.config import Settings
from deskpal.core.errors import PayloadTooLarge
from deskpal.storage import BlobNotFound, LocalStorage, Storage, build_storage, check_key, storage_for

DATA = bytes(range(256)) * 1000  # 256 kB


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def repeated(total: int, size: int = 1024 * 1024) -> AsyncIterator[bytes]:
    chunk = b"\x5a" * size
    sent = 0
    while sent < total:
        piece = chunk[: min(size, total - sent)]
        sent += len(piece)
        yield piece


async def keys(store: Storage, prefix: str) -> set[str]:
    return {info.key async for info in store.list(prefix)}


class TestPut:
    async def test_stream_is_stored_under_a_new_key_in_its_prefix(self, store: Storage) -> None:
        blob = await store.put("attachments/7", chunks_of(DATA), max_bytes=len(DATA))
        assert blob.size == len(DATA)
        area, customer, name = blob.key.split("/")
        assert (area, customer, len(name)) == ("attachments", "7", 32)
        assert await store.read_all(blob.key) == DATA
        assert await keys(store, "attachments/7") == {blob.key}

    async def test_empty_file_is_a_blob(self, store: Storage) -> None:
        blob = await store.put("attachments/7", chunks_of(b""), max_bytes=10)
        assert blob.size == 0 and await store.read_all(blob.key) == b""

    async def test_over_the_limit_is_refused_and_nothing_is_kept(self, store: Storage) -> None:
        with pytest.raises(PayloadTooLarge):
            await store.put("attachments/7", chunks_of(DATA), max_bytes=len(DATA) - 1)
        assert await keys(store, "attachments/7") == set()
        if isinstance(store, LocalStorage):
            assert list(store.partial_dir.iterdir()) == []

    async def test_keys_never_leave_the_root(self, store: Storage) -> None:
        for bad in ("../etc", "a/../../b", "/abs", "a//b", "a/b.c", "", "a\nb"):
            with pytest.raises(ValueError, match="storage key"):
                check_key(bad)
            with pytest.raises(ValueError, match="storage key"):
                await store.exists(bad)


class TestMultipartS3:
    async def test_large_file_goes_up_in_parts(self, s3_storage: Storage) -> None:
        total = 9 * 1024 * 1024 + 123  # over one 8 MiB part
        blob = await s3_storage.put("recordings/3", repeated(total), max_bytes=total)
        assert blob.size == total
        reader = await s3_storage.open(blob.key, total - 10)
        assert b"".join([c async for c in reader]) == b"\x5a" * 10

    async def test_refused_large_upload_is_aborted(self, s3_storage: Storage) -> None:
        limit = 10 * 1024 * 1024
        with pytest.raises(PayloadTooLarge):
            await s3_storage.put("recordings/3", repeated(limit + 1), max_bytes=limit)
        assert await keys(s3_storage, "recordings/3") == set()
        client = s3_storage._client  # type: ignore[attr-defined]
        pending = client.list_multipart_uploads(Bucket=s3_storage.bucket)  # type: ignore[attr-defined]
        assert pending.get("Uploads", []) == []


class TestRead:
    async def test_byte_range(self, store: Storage) -> None:
        blob = await store.put("attachments/1", chunks_of(DATA), max_bytes=len(DATA))
        reader = await store.open(blob.key, 1000, 1999)
        assert reader.length == 1000
        assert b"".join([c async for c in reader]) == DATA[1000:2000]
        tail = await store.open(blob.key, len(DATA) - 5)
        assert b"".join([c async for c in tail]) == DATA[-5:]

    async def test_missing_blob(self, store: Storage) -> None:
        with pytest.raises(BlobNotFound):
            await store.open("attachments/1/" + "0" * 32)
        assert not await store.exists("attachments/1/" + "0" * 32)


class TestDelete:
    async def test_delete_is_idempotent(self, store: Storage) -> None:
        blob = await store.put("attachments/1", chunks_of(b"x"), max_bytes=1)
        assert await store.exists(blob.key)
        await store.delete(blob.key)
        await store.delete(blob.key)
        assert not await store.exists(blob.key)


class TestList:
    async def test_lists_only_its_prefix_with_times(self, store: Storage) -> None:
        mine = await store.put("attachments/1", chunks_of(b"a"), max_bytes=1)
        await store.put("attachments/12", chunks_of(b"b"), max_bytes=1)
        found = [info async for info in store.list("attachments/1")]
        assert [i.key for i in found] == [mine.key]
        assert found[0].size == 1 and found[0].modified_at.tzinfo is not None


class TestSettings:
    def test_default_is_local_under_the_data_dir(self, tmp_path: Path) -> None:
        store = build_storage(Settings(data_dir=tmp_path))
        assert isinstance(store, LocalStorage) and store.root == (tmp_path / "files").resolve()
        assert storage_for(store.locator) is store

    def test_s3_url_and_endpoint(self, s3_endpoint: str) -> None:
        from deskpal.storage.s3 import S3Storage

        settings = Settings(storage_url="s3://bucket/some/prefix", s3_endpoint_url=s3_endpoint)
        store = build_storage(settings)
        assert isinstance(store, S3Storage)
        assert (store.bucket, store.prefix, store.locator) == (
            "bucket",
            "some/prefix",
            "s3://bucket/some/prefix",
        )

    def test_unsupported_url_is_refused(self) -> None:
        with pytest.raises(ValueError, match="s3://"):
            Settings(storage_url="ftp://host/x")

    def test_environment_names(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DESKPAL_STORAGE_URL", "s3://b")
        monkeypatch.setenv("DESKPAL_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
        monkeypatch.setenv("DESKPAL_ATTACHMENT_MAX_BYTES", "1000")
        settings = Settings()
        assert settings.storage_url == "s3://b" and settings.s3_endpoint_url == "http://127.0.0.1:9000"
        assert settings.attachment_max_bytes == 1000
        assert "AWS_SECRET_ACCESS_KEY" not in os.environ or settings.storage_url  # never read by deskpal
