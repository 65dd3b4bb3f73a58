"""schemathesis against /openapi.json of a real `deskpal serve`: no 5xx, responses match the schema."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deskpal.auth.service import create_api_key
from deskpal.core.context import Ctx, Role
from deskpal.core.db import Database, transaction
from deskpal.core.security import issue_jwt
from deskpal.customers.schemas import CustomerRepCreateDTO
from deskpal.customers.service import create_customer, create_rep

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
MAX_EXAMPLES = os.environ.get("DESKPAL_SCHEMATHESIS_EXAMPLES", "15")
SECRET = "st-" + "k" * 40


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(url: str) -> tuple[str, int, int, str]:
    """A customer whose fuzzing key survives the fuzzer: spare reps and keys take the small ids
    that a fuzzer deletes or deactivates, so the admin and key it works with stay usable."""
    db = Database(url)
    try:
        async with transaction(db) as session:
            new = await create_customer(session, "Fuzzed", admin_email="admin@fuzz.test", admin_password=None)
            ctx = Ctx.system(session, new.customer.customer_id)
            for i in range(8):
                await create_rep(ctx, CustomerRepCreateDTO(name="spare", email=f"spare{i}@fuzz.test"))
                await create_api_key(ctx, name="spare", rep_id=new.admin.customer_rep_id)
            rep = await create_rep(
                ctx, CustomerRepCreateDTO(name="fuzzer", email="fuzzer@fuzz.test", role=Role.ADMIN)
            )
            _, secret = await create_api_key(ctx, name="fuzzer", rep_id=rep.customer_rep_id)
            return secret, rep.customer_rep_id, new.customer.customer_id, rep.token_key
    finally:
        await db.dispose()


@pytest.fixture
def server(fresh_database: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    env = {
        **os.environ,
        "DESKPAL_DATABASE_URL": fresh_database,
        "DESKPAL_DATA_DIR": str(tmp_path / "data"),
        "DESKPAL_SECRET_KEY": SECRET,
    }
    subprocess.run([str(BIN / "deskpal"), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    key, rep_id, customer_id, token_key = asyncio.run(_seed(fresh_database))
    # The second Messages API takes login tokens only (an API key is refused there).
    login, _ = issue_jwt(
        SECRET, rep_id=rep_id, customer_id=customer_id, token_key=token_key, ttl_seconds=3600
    )
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "deskpal"), "serve", "--port", str(port), "--no-demo", "--no-migrate"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("deskpal serve did not start: " + (tmp_path / "serve.log").read_text())
        yield base, key, login
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        server_log = (tmp_path / "serve.log").read_text()
        assert "Traceback" not in server_log, server_log[-4000:]


def _schemathesis(base: str, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    # Every phase, on both databases: the coverage phase sends each schema's boundary values (lengths
    # at and past maxLength, huge ids, NUL bytes), the hooks module edge instants; all four runs take
    # about 80 s together (2026-12-03). DESKPAL_SCHEMATHESIS_PHASES narrows it while iterating.
    phases = os.environ.get("DESKPAL_SCHEMATHESIS_PHASES", "examples,coverage,fuzzing")
    return subprocess.run(
        [
            str(BIN / "schemathesis"),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            MAX_EXAMPLES,
            "--phases",
            phases,
            "--seed",
            "20261123",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.contract.schemathesis_hooks",
            "PYTHONPATH": str(ROOT),
        },
    )


def test_no_server_errors_and_responses_match_the_schema(server: tuple[str, str, str]) -> None:
    base, key, _ = server
    result = _schemathesis(base, key)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_the_helpdesk_messages_api_with_a_login_token(server: tuple[str, str, str]) -> None:
    """With the API key above, /helpdesk routes only ever answer 401; fuzz them as a logged-in rep."""
    base, _, login = server
    result = _schemathesis(base, login, "--include-path-regex", "^/helpdesk/")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "/helpdesk/api/messages" in result.stdout, result.stdout[-4000:]
