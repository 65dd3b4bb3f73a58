"""A local S3-compatible server (moto's server mode) on a free port; import its fixtures in a conftest."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from deskpal.storage import register


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "deskpal-test",
    "AWS_SECRET_ACCESS_KEY": "deskpal-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server in a thread; credentials in the usual AWS variables, as in production."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def make_bucket(endpoint: str) -> str:
    import boto3

    bucket = f"deskpal-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def s3_storage(s3_endpoint: str) -> Iterator[Any]:
    from deskpal.storage.s3 import S3Storage

    store = S3Storage(make_bucket(s3_endpoint), "deskpal", endpoint_url=s3_endpoint)
    register(store)
    yield store
    store._client.close()
