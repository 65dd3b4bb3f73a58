"""Blobs in S3-compatible object storage (AWS S3, MinIO, Ceph, R2, …), through boto3 in threads.

boto3's clients are thread-safe; each blocking call runs in a worker thread so the event loop never
waits on the network. Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role); deskpal never stores them.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

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

# S3 refuses multipart parts under 5 MiB (but the last); a part is held in memory while it is sent.
PART_BYTES = 8 * 1024 * 1024
T = TypeVar("T")


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"NoSuchKey", "404", "NotFound"}


class _ObjectReader(BlobReader):
    def __init__(self, body: Any, length: int) -> None:
        super().__init__(length)
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while True:
                chunk: bytes = await anyio.to_thread.run_sync(self._body.read, CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        self._body.close()


class S3Storage(Storage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self._client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
        )

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> S3Storage:
        """s3://bucket[/prefix]"""
        rest = url.removeprefix("s3://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError("an S3 storage URL names a bucket: s3://bucket[/prefix]")
        return cls(bucket, prefix, **kw)

    @property
    def locator(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def _object_key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _blob_key(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    async def _call(self, fn: Callable[..., T], **kw: Any) -> T:
        return await anyio.to_thread.run_sync(partial(fn, **kw))

    async def put(self, prefix: str, chunks: AsyncIterable[bytes], *, max_bytes: int) -> StoredBlob:
        key = new_key(prefix)
        target = {"Bucket": self.bucket, "Key": self._object_key(key)}
        size = 0
        part = io.BytesIO()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise too_large(max_bytes)
                part.write(chunk)
                if part.tell() >= PART_BYTES:
                    if upload_id is None:
                        started = await self._call(self._client.create_multipart_upload, **target)
                        upload_id = str(started["UploadId"])
                    parts.append(await self._send_part(target, upload_id, len(parts) + 1, part))
                    part = io.BytesIO()
            if upload_id is None:
                # Small enough for one request (and an empty file is a valid blob).
                await self._call(self._client.put_object, Body=part.getvalue(), **target)
            else:
                if part.tell():
                    parts.append(await self._send_part(target, upload_id, len(parts) + 1, part))
                await self._call(
                    self._client.complete_multipart_upload,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **target,
                )
        except BaseException:
            if upload_id is not None:
                # Parts of an aborted upload would otherwise be kept (and billed) until a lifecycle rule.
                with anyio.CancelScope(shield=True):
                    await self._call(self._client.abort_multipart_upload, UploadId=upload_id, **target)
            raise
        return StoredBlob(key, size)

    async def _send_part(
        self, target: dict[str, str], upload_id: str, number: int, part: io.BytesIO
    ) -> dict[str, Any]:
        part.seek(0)
        sent = await self._call(
            self._client.upload_part, UploadId=upload_id, PartNumber=number, Body=part, **target
        )
        return {"ETag": sent["ETag"], "PartNumber": number}

    async def open(self, key: str, start: int = 0, end: int | None = None) -> BlobReader:
        ranged = {"Range": f"bytes={start}-{'' if end is None else end}"} if start or end is not None else {}
        try:
            got = await self._call(
                self._client.get_object, Bucket=self.bucket, Key=self._object_key(key), **ranged
            )
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(key) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return _ObjectReader(io.BytesIO(b""), 0)
            raise
        return _ObjectReader(got["Body"], int(got.get("ContentLength", 0)))

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.bucket, Key=self._object_key(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self._client.head_object, Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        token: str | None = None
        while True:
            page = await self._call(
                self._client.list_objects_v2,
                Bucket=self.bucket,
                Prefix=self._object_key(prefix) + "/",
                **({"ContinuationToken": token} if token else {}),
            )
            for item in page.get("Contents", []):
                modified = item["LastModified"]
                yield BlobInfo(self._blob_key(item["Key"]), int(item["Size"]), modified.astimezone(UTC))
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    async def aclose(self) -> None:
        self._client.close()
