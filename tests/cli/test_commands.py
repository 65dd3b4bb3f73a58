"""The `deskpal` commands, run as a user runs them, against a new database of each kind.

Each command is a real process. To keep the suite quick, commands that do not depend on each other
run at once (module fixtures gather them), and the tests assert on what each one printed.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from deskpal.app import create_app
from deskpal.cli import app as cli_app
from deskpal.config import Settings
from tests.cli.support import TEST_SECRET_KEY, Result, cheap_env, run

ADMIN_PASSWORD = "s3cret-admin-pass"
VIEWER_PASSWORD = "viewer-pass-1"


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as argv prefixes; () is `deskpal` itself."""
    paths = [path]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _command_paths(sub, (*path, name))
    return paths


def _email(label: str = "rep") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@cli.test"


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- commands that need no database -----------------------------------------------------------------


@pytest.fixture(scope="module")
async def no_db(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Result]:
    """`--help` of every command, and the commands given a database they cannot use, all at once."""
    tmp = tmp_path_factory.mktemp("cli-nodb")
    env = cheap_env(tmp, f"sqlite+aiosqlite:///{tmp / 'unused.db'}")
    runs: dict[tuple[str, ...], tuple[list[str], dict[str, str]]] = {
        ("help", *path): ([*path, "--help"], env) for path in _command_paths(typer.main.get_command(cli_app))
    }
    runs[("bad-url",)] = (["migrate"], {**env, "DESKPAL_DATABASE_URL": "mysql://root@localhost/x"})
    # Nothing listens on port 1. (An unopenable SQLite file is not used here: aiosqlite's thread
    # sometimes prints a traceback of its own as the process exits.)
    unreachable = {**env, "DESKPAL_DATABASE_URL": "postgresql+asyncpg://deskpal@127.0.0.1:1/deskpal"}
    runs[("unreachable",)] = (["customers", "create", "X", "--admin-email", _email()], unreachable)
    # Refused before any database work: the database file is never even created.
    runs[("customer-bad-email",)] = (["customers", "create", "X", "--admin-email", "not-an-email"], env)
    runs[("customer-short-password",)] = (
        ["customers", "create", "X", "--admin-email", _email(), "--admin-password", "short"],
        env,
    )
    runs[("customer-no-name",)] = (["customers", "create", " ", "--admin-email", _email()], env)
    results = await asyncio.gather(*(run(args, e) for args, e in runs.values()))
    assert not (tmp / "unused.db").exists(), "--help and invalid input must not touch the database"
    return dict(zip(runs, results, strict=True))


class TestHelp:
    def test_every_command_and_subcommand_has_help(self, no_db: dict[tuple[str, ...], Result]) -> None:
        helps = {key[1:]: result for key, result in no_db.items() if key[0] == "help"}
        expected = {("serve",), ("worker",), ("migrate",), ("customers", "create"), ("reps", "create")}
        assert expected | {("apikeys", "create"), ("apikeys", "revoke")} <= set(helps)
        for path, result in helps.items():
            assert result.returncode == 0, result.describe()
            assert "Usage:" in result.stdout, path

    def test_serve_help_lists_host_port_and_workers(self, no_db: dict[tuple[str, ...], Result]) -> None:
        for option in ("--host", "--port", "--workers"):
            assert option in no_db[("help", "serve")].stdout


class TestInvalidInput:
    def test_bad_email_short_password_and_blank_name_are_json_errors(
        self, no_db: dict[tuple[str, ...], Result]
    ) -> None:
        for case, field in [
            ("customer-bad-email", "email"),
            ("customer-short-password", "password"),
            ("customer-no-name", "name"),
        ]:
            error = no_db[(case,)].error()
            assert error["code"] == "VALIDATION_FAILED", case
            assert error["errors"][0]["field"] == field, case

    def test_unsupported_database_url_is_a_json_error(self, no_db: dict[tuple[str, ...], Result]) -> None:
        error = no_db[("bad-url",)].error()
        assert error["code"] == "BAD_SETTING"
        assert error["errors"][0]["field"] == "DESKPAL_DATABASE_URL"

    def test_unusable_database_is_a_json_error(self, no_db: dict[tuple[str, ...], Result]) -> None:
        assert no_db[("unreachable",)].error()["code"] == "DATABASE_ERROR"


# --- commands against a new database of each kind --------------------------------------------------


@dataclass
class Flow:
    """What the commands printed, run once per database kind in as few rounds as their order allows."""

    url: str
    env: dict[str, str]
    migrate: Result
    migrate_again: Result
    admin_email: str
    customer: Result  # with --admin-password
    generated: Result  # without: the password is generated and printed
    viewer_email: str
    viewer: Result
    errors: dict[str, Result]
    viewer_key: Result
    revoked_key: Result
    revoke: Result


@pytest.fixture(scope="module")
async def flow(fresh_db_url: str, cli_data_dir: Path) -> Flow:
    env = cheap_env(cli_data_dir, fresh_db_url)
    migrate = await run(["migrate"], env, seconds=60)
    assert migrate.returncode == 0, migrate.describe()

    admin_email = _email("admin")
    migrate_again, customer, generated = await asyncio.gather(
        run(["migrate"], env, seconds=60),
        run(
            [
                "customers",
                "create",
                "Acme Corp",
                "--admin-email",
                admin_email,
                "--admin-password",
                ADMIN_PASSWORD,
            ],
            env,
        ),
        run(["customers", "create", "Globex", "--admin-email", _email("admin")], env),
    )
    first, second = customer.json(), generated.json()

    viewer_email = _email("viewer")
    create_viewer = ["reps", "create", "--customer-id", str(first["customerID"]), "--name", "Vera"]
    error_runs = {
        "customer-duplicate-email": ["customers", "create", "Other", "--admin-email", admin_email.upper()],
        "rep-unknown-customer": [
            *("reps", "create", "--customer-id", "987654"),
            *("--name", "X", "--email", _email()),
        ],
        "rep-email-of-other-customer": [
            *("reps", "create", "--customer-id", str(second["customerID"])),
            *("--name", "X", "--email", admin_email),
        ],
        "key-unknown-rep": ["apikeys", "create", "--rep-id", "987654"],
        "revoke-unknown-key": ["apikeys", "revoke", "987654"],
    }
    viewer, *error_results = await asyncio.gather(
        run(
            [*create_viewer, "--email", viewer_email, "--role", "viewer", "--password", VIEWER_PASSWORD], env
        ),
        *(run(args, env) for args in error_runs.values()),
    )
    create_key = ["apikeys", "create", "--rep-id", str(viewer.json()["customerRepID"])]
    viewer_key, revoked_key = await asyncio.gather(
        run([*create_key, "--name", "ci"], env), run([*create_key, "--name", "old"], env)
    )
    revoke = await run(["apikeys", "revoke", str(revoked_key.json()["apiKeyID"])], env)
    return Flow(
        url=fresh_db_url,
        env=env,
        migrate=migrate,
        migrate_again=migrate_again,
        admin_email=admin_email,
        customer=customer,
        generated=generated,
        viewer_email=viewer_email,
        viewer=viewer,
        errors=dict(zip(error_runs, error_results, strict=True)),
        viewer_key=viewer_key,
        revoked_key=revoked_key,
        revoke=revoke,
    )


@pytest.fixture
async def api(flow: Flow, cli_data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app over HTTP, on the database the commands wrote to."""
    settings = Settings(
        database_url=flow.url, data_dir=cli_data_dir, secret_key=TEST_SECRET_KEY, run_worker=False
    )
    application = create_app(settings)
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await application.state.db.dispose()


class TestMigrate:
    async def test_migrate_creates_the_schema_on_an_empty_database(self, flow: Flow) -> None:
        assert "database at head" in flow.migrate.stdout
        engine = create_async_engine(flow.url)
        try:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        finally:
            await engine.dispose()
        assert {"alembic_version", "customer", "customer_rep", "api_key", "channel", "job"} <= tables

    def test_migrate_again_is_a_no_op(self, flow: Flow) -> None:
        assert flow.migrate_again.returncode == 0, flow.migrate_again.describe()
        assert "database at head" in flow.migrate_again.stdout


class TestCustomersCreate:
    async def test_prints_one_json_object_whose_key_works(self, flow: Flow, api: httpx.AsyncClient) -> None:
        body = flow.customer.json()
        assert isinstance(body, dict)
        assert isinstance(body["customerID"], int)
        assert isinstance(body["customerRepID"], int)
        assert body["apiKey"].startswith("dpk_")
        assert "adminPassword" not in body, "a password given on the command line is not echoed"
        assert flow.customer.stderr == ""

        r = await api.get("/api/Channels", headers=_bearer(body["apiKey"]))
        assert r.status_code == 200, r.text
        r = await api.get(f"/api/CustomerReps/{body['customerRepID']}", headers=_bearer(body["apiKey"]))
        assert r.status_code == 200, r.text
        assert (r.json()["role"], r.json()["email"]) == ("admin", flow.admin_email)

    async def test_admin_logs_in_with_the_given_password(self, flow: Flow, api: httpx.AsyncClient) -> None:
        r = await api.post("/api/Auth/login", json={"email": flow.admin_email, "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        r = await api.get("/api/Topics", headers=_bearer(r.json()["token"]))
        assert r.status_code == 200, r.text

    async def test_generated_password_is_printed_and_logs_in(
        self, flow: Flow, api: httpx.AsyncClient
    ) -> None:
        body = flow.generated.json()
        r = await api.post(
            "/api/Auth/login", json={"email": body["adminEmail"], "password": body["adminPassword"]}
        )
        assert r.status_code == 200, r.text

    async def test_each_customer_sees_only_its_own_reps(self, flow: Flow, api: httpx.AsyncClient) -> None:
        r = await api.get("/api/CustomerReps", headers=_bearer(flow.generated.json()["apiKey"]))
        assert r.status_code == 200, r.text
        assert [item["email"] for item in r.json()["items"]] == [flow.generated.json()["adminEmail"]]

    def test_duplicate_email_is_a_json_error(self, flow: Flow) -> None:
        assert flow.errors["customer-duplicate-email"].error()["code"] == "EMAIL_IN_USE"


class TestRepsCreate:
    async def test_creates_a_rep_with_its_role(self, flow: Flow, api: httpx.AsyncClient) -> None:
        rep = flow.viewer.json()
        assert rep["customerID"] == flow.customer.json()["customerID"]
        assert rep["role"] == "viewer"
        r = await api.get("/api/CustomerReps", headers=_bearer(flow.customer.json()["apiKey"]))
        assert flow.viewer_email in {item["email"] for item in r.json()["items"]}
        r = await api.post("/api/Auth/login", json={"email": flow.viewer_email, "password": VIEWER_PASSWORD})
        assert r.status_code == 200, r.text

    def test_unknown_customer_is_a_json_error(self, flow: Flow) -> None:
        assert flow.errors["rep-unknown-customer"].error()["code"] == "NOT_FOUND"

    def test_email_of_another_customers_rep_is_a_json_error(self, flow: Flow) -> None:
        assert flow.errors["rep-email-of-other-customer"].error()["code"] == "EMAIL_IN_USE"


class TestApiKeysCreate:
    def test_prints_the_key_once_with_its_id(self, flow: Flow) -> None:
        key = flow.viewer_key.json()
        assert key["customerRepID"] == flow.viewer.json()["customerRepID"]
        assert isinstance(key["apiKeyID"], int)
        assert key["apiKey"].startswith("dpk_")

    async def test_key_acts_as_its_rep(self, flow: Flow, api: httpx.AsyncClient) -> None:
        viewer = _bearer(flow.viewer_key.json()["apiKey"])
        assert (await api.get("/api/Topics", headers=viewer)).status_code == 200
        r = await api.post("/api/Topics", headers=viewer, json={"name": "Billing"})
        assert r.status_code == 403, r.text
        r = await api.get("/api/ApiKeys", headers=viewer)
        assert r.status_code == 200, r.text
        assert {item["customerRepID"] for item in r.json()["items"]} == {flow.viewer.json()["customerRepID"]}

    def test_unknown_rep_is_a_json_error(self, flow: Flow) -> None:
        assert flow.errors["key-unknown-rep"].error()["code"] == "NOT_FOUND"


class TestApiKeysRevoke:
    async def test_revoked_key_gets_401(self, flow: Flow, api: httpx.AsyncClient) -> None:
        key = flow.revoked_key.json()
        assert flow.revoke.json() == {"apiKeyID": key["apiKeyID"], "revoked": True}
        r = await api.get("/api/Channels", headers=_bearer(key["apiKey"]))
        assert r.status_code == 401, r.text
        assert r.headers["content-type"].startswith("application/problem+json")

    async def test_other_keys_of_the_rep_keep_working(self, flow: Flow, api: httpx.AsyncClient) -> None:
        r = await api.get("/api/Channels", headers=_bearer(flow.viewer_key.json()["apiKey"]))
        assert r.status_code == 200, r.text

    async def test_revoked_key_stays_listed_with_its_revocation_time(
        self, flow: Flow, api: httpx.AsyncClient
    ) -> None:
        admin = _bearer(flow.customer.json()["apiKey"])
        r = await api.get(f"/api/ApiKeys/{flow.revoked_key.json()['apiKeyID']}", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["revokedAt"] is not None

    def test_unknown_key_is_a_json_error(self, flow: Flow) -> None:
        assert flow.errors["revoke-unknown-key"].error()["code"] == "NOT_FOUND"
