"""The quick start, `deskpal serve --workers N` and `deskpal worker`, as real processes."""

from __future__ import annotations

import asyncio
import shutil
import signal
import stat
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from deskpal.core.context import Ctx
from deskpal.core.db import Database, transaction
from deskpal.core.jobs import JobRow, JobStatus
from deskpal.customers.service import create_customer
from deskpal.migrate import upgrade_async
from tests.cli.support import DESKPAL, REPO, Process, cheap_env, deskpal_env, free_port

DEMO_BANNER = r"demo customer was created"
CREDENTIALS = (
    r"admin email:\s+(?P<email>\S+)\s+admin password:\s+(?P<password>\S+)\s+API key:\s+(?P<key>dpk_\S+)"
)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _quick_start(port: int) -> tuple[list[str], Path | None]:
    """`make serve` in the repository, as the README says; `deskpal serve` where that cannot run.

    The install step is skipped (-o): the tests already run with deskpal installed, and a stale stamp
    must not make a test run pip.
    """
    if (
        shutil.which("make")
        and (REPO / ".venv" / "bin" / "deskpal").exists()
        and (REPO / "Makefile").exists()
    ):
        return ["make", "-s", "-o", ".venv/.installed", "serve", f"SERVE_ARGS=--port {port}"], REPO
    return [*DESKPAL, "serve", "--port", str(port)], None


class TestQuickStart:
    async def test_first_start_prints_demo_credentials_that_work(self, tmp_path: Path) -> None:
        """The quick start with nothing configured but the data dir (./var when run by hand)."""
        data_dir = tmp_path / "var"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv, cwd = _quick_start(port)
        async with Process(argv, deskpal_env(data_dir), tmp_path, cwd=cwd) as server:
            creds = await server.wait_for_output(CREDENTIALS)
            await server.wait_healthy(base)
            assert f"http://localhost:{port}/api/Channels" in server.stdout
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                r = await client.get("/api/Channels", headers=_bearer(creds["key"]))
                assert r.status_code == 200, r.text
                assert {c["channelType"] for c in r.json()["items"]} == {"Email", "Chat"}

                r = await client.post(
                    "/api/Auth/login", json={"email": creds["email"], "password": creds["password"]}
                )
                assert r.status_code == 200, r.text
                token = r.json()["token"]
                assert r.json()["expiresAt"].endswith("Z")
                r = await client.get("/api/Channels", headers=_bearer(token))
                assert r.status_code == 200, r.text
                assert (await client.get("/ready")).status_code == 200
            await server.stop()
            assert "Application shutdown complete" in server.stderr, server.describe()

        # The embedded SQLite database and the generated secret key live in the data dir.
        assert (data_dir / "deskpal.db").is_file(), "DESKPAL_DATA_DIR was not honoured"
        assert stat.S_IMODE((data_dir / "secret_key").stat().st_mode) == 0o600

        # A second start on the same data dir: no new demo, and the old credentials still work
        # (the login token too: the secret key was kept).
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv = [*DESKPAL, "serve", "--port", str(port)]
        async with Process(argv, deskpal_env(data_dir), tmp_path) as again:
            await again.wait_healthy(base)
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                for credential in (creds["key"], token):
                    r = await client.get("/api/Channels", headers=_bearer(credential))
                    assert r.status_code == 200, r.text
                    assert r.json()["totalCount"] == 2
            await _assert_graceful_stop(again)
            assert DEMO_BANNER not in again.stdout
            assert "password" not in again.stdout


class TestServeWorkers:
    async def test_two_api_processes_answer(self, tmp_path: Path) -> None:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        argv = [*DESKPAL, "serve", "--port", str(port), "--workers", "2"]
        async with Process(argv, deskpal_env(tmp_path / "var"), tmp_path) as server:
            creds = await server.wait_for_output(CREDENTIALS)
            await server.wait_healthy(base, seconds=45)
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                responses = await asyncio.gather(
                    *(client.get("/api/Channels", headers=_bearer(creds["key"])) for _ in range(8))
                )
            assert [r.status_code for r in responses] == [200] * 8
            await _assert_graceful_stop(server)
            assert server.stderr.count("Started server process") == 2, server.describe()


class TestWorker:
    async def test_worker_runs_a_queued_job_and_stops_on_sigterm(
        self, fresh_db_url: str, tmp_path: Path
    ) -> None:
        await upgrade_async(fresh_db_url)
        db = Database(fresh_db_url)
        try:
            async with transaction(db) as session:
                new = await create_customer(
                    session, "Jobs", admin_email=f"jobs-{time.monotonic_ns()}@cli.test", admin_password=None
                )
                customer_id = new.customer.customer_id
                job = await Ctx.system(session, customer_id).enqueue("system.noop", {"note": "cli test"})
                job_id = job.job_id

            argv = [*DESKPAL, "worker", "--poll", "0.1"]
            async with Process(argv, cheap_env(tmp_path, fresh_db_url), tmp_path) as worker:
                status = await _wait_for_status(db, customer_id, job_id, JobStatus.DONE, worker)
                assert status == JobStatus.DONE
                assert await worker.stop() == 0, worker.describe()
                assert "stopped" in worker.stderr, worker.describe()
        finally:
            await db.dispose()


async def _assert_graceful_stop(server: Process) -> None:
    # uvicorn shuts down cleanly on SIGTERM and then re-raises the signal, so -SIGTERM is a clean exit.
    assert await server.stop() in {0, -signal.SIGTERM}, server.describe()
    assert "Application shutdown complete" in server.stderr, server.describe()


async def _wait_for_status(
    db: Database, customer_id: int, job_id: int, wanted: JobStatus, worker: Process, seconds: float = 30
) -> str:
    deadline = time.monotonic() + seconds
    status = ""
    while time.monotonic() < deadline:
        async with transaction(db, write=False, customer_id=customer_id) as session:
            row = (await session.scalars(select(JobRow).where(JobRow.job_id == job_id))).one()
            status = row.status
        if status == wanted:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} still {status!r} after {seconds}s\n{worker.describe()}")
