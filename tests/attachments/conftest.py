"""Each attachment test gets its own empty store, so that "nothing is left" can be checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from deskpal.storage import LocalStorage, Storage, register
from tests.storage.s3server import s3_endpoint, s3_storage

__all__ = ["s3_endpoint", "s3_storage"]


@pytest.fixture(autouse=True)
def storage(app: FastAPI, tmp_path: Path) -> Iterator[Storage]:
    saved = app.state.storage
    app.state.storage = register(LocalStorage(tmp_path / "files"))
    try:
        yield app.state.storage
    finally:
        app.state.storage = saved
