"""Running the real `deskpal` command: one-shot commands, and servers and workers that are always killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

REPO = Path(__file__).resolve().parents[2]
_SCRIPT = Path(sys.executable).with_name("deskpal")
# The console script of the environment running the tests; `python -m deskpal` where it is missing.
DESKPAL: list[str] = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "deskpal"]

TEST_SECRET_KEY = "cli-test-secret-" + "k" * 40


def deskpal_env(data_dir: Path, database_url: str | None = None, **settings: str) -> dict[str, str]:
    """The environment with no DESKPAL_* setting but the ones given, so defaults are the real defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DESKPAL_")}
    env["DESKPAL_DATA_DIR"] = str(data_dir)
    if database_url is not None:
        env["DESKPAL_DATABASE_URL"] = database_url
    env.update({f"DESKPAL_{k.upper()}": v for k, v in settings.items()})
    return env


def cheap_env(data_dir: Path, database_url: str) -> dict[str, str]:
    """For the command tests: a fixed secret, and Argon2 cheap enough that hashing costs nothing."""
    return deskpal_env(
        data_dir, database_url, secret_key=TEST_SECRET_KEY, argon2_time_cost="1", argon2_memory_kib="1024"
    )


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode == 0, self.describe()
        return json.loads(self.stdout)

    def error(self) -> dict[str, Any]:
        """The JSON error a failed command printed on stderr; fails on a traceback or a zero exit."""
        assert self.returncode != 0, self.describe()
        assert "Traceback" not in self.stderr, self.describe()
        body: dict[str, Any] = json.loads(self.stderr.strip().splitlines()[-1])
        assert isinstance(body["error"], str), body
        assert isinstance(body["code"], str), body
        return body

    def describe(self) -> str:
        return (
            f"deskpal {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"
        )


async def run(args: list[str], env: dict[str, str], *, seconds: float = 30) -> Result:
    """Run `deskpal ARGS` to the end; killed, and the test failed, after `seconds`."""
    proc = await asyncio.create_subprocess_exec(
        *DESKPAL,
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(seconds):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            _kill_group(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return Result(args, proc.returncode, out.decode(), err.decode())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class Process:
    """A long-running process (serve, worker, make serve) in its own process group.

    Output goes to files, so a chatty process never blocks on a full pipe. Use as an async context
    manager: leaving it stops the whole group, with SIGKILL if SIGTERM is not enough.
    """

    def __init__(
        self, argv: list[str], env: dict[str, str], log_dir: Path, *, cwd: Path | None = None
    ) -> None:
        self.argv, self.env, self.cwd = argv, env, cwd
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = f"proc-{time.monotonic_ns()}"
        self.out_path, self.err_path = log_dir / f"{stem}.out", log_dir / f"{stem}.err"
        self.proc: asyncio.subprocess.Process | None = None

    def _logs(self) -> tuple[IO[bytes], IO[bytes]]:
        return open(self.out_path, "wb"), open(self.err_path, "wb")

    async def __aenter__(self) -> Process:
        out, err = self._logs()
        with out, err:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        assert self.proc is not None
        return (
            f"{' '.join(self.argv)} (exit {self.proc.returncode})\n"
            f"--- stdout\n{self.stdout}\n--- stderr\n{self.stderr[-4000:]}"
        )

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"process exited early\n{self.describe()}")

    async def wait_for_output(self, pattern: str, *, seconds: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            match = re.search(pattern, self.stdout)
            if match:
                return match
            self._check_alive()
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {pattern!r} within {seconds}s\n{self.describe()}")

    async def wait_healthy(self, base_url: str, *, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{base_url}/health did not answer within {seconds}s\n{self.describe()}")

    async def stop(self, *, seconds: float = 15) -> int:
        """SIGTERM to the group; SIGKILL to what is left of it after `seconds`. The exit status.

        Waits for the whole group, not just the process started: `make serve` exits at once on
        SIGTERM while its deskpal child, and uvicorn's worker processes, are still shutting down.
        """
        assert self.proc is not None
        deadline = time.monotonic() + seconds
        _kill_group(self.proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(seconds):
                await self.proc.wait()
        except TimeoutError:
            pass
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:  # noqa: ASYNC110 - polls other processes
            await asyncio.sleep(0.05)
        if self.proc.returncode is None or _group_alive(self.proc.pid):
            _kill_group(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
            raise AssertionError(f"did not stop on SIGTERM within {seconds}s\n{self.describe()}")
        return self.proc.returncode


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies left to a non-reaping init do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
