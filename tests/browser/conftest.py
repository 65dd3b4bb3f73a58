"""A real browser against the app served by uvicorn on a free port.

The browser is Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`; `make test`
installs it when missing and run as root), driven by Playwright through `executable_path`: never
`playwright install`, which downloads a browser build from outside. Without Chromium or Playwright
these tests skip with the reason, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
import uvicorn
from fastapi import FastAPI

from tests.conftest import IN_CI

CHROMIUM = Path(os.environ.get("DESKPAL_TEST_CHROMIUM", "/usr/bin/chromium"))


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"the browser tests need it under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the python package playwright is not installed (pip install -e '.[dev]')")
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium; make test does it as root)")
    async with async_playwright() as pw:
        # --no-sandbox: Chromium's sandbox refuses to start as root, which tests and CI run as.
        launched = await pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def live_url(app: FastAPI) -> AsyncIterator[str]:
    """The test app (its database already migrated) behind uvicorn on 127.0.0.1, in this event loop.

    lifespan off: the app fixture owns the database and the worker is off in tests.
    """
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # raises what stopped it
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
