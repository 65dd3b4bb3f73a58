"""A store of each kind for the storage tests: local disk, and a local S3-compatible server."""

from __future__ import annotations

from pathlib import Path

import pytest

from deskpal.storage import LocalStorage, Storage, register
from tests.storage.s3server import s3_endpoint, s3_storage

__all__ = ["s3_endpoint", "s3_storage"]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return register(LocalStorage(tmp_path / "files"))
    s3: Storage = request.getfixturevalue("s3_storage")
    return s3
