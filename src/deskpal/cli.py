"""The `deskpal` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from deskpal.config import Settings
from deskpal.core.context import Ctx, Role
from deskpal.core.db import Database, transaction

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# core.schemas.MAX_ID, repeated so that `deskpal --help` does not import FastAPI.
MAX_ID = 2**53 - 1

app = typer.Typer(
    help="deskpal: a self-hostable, AI-powered customer-support helpdesk.", no_args_is_help=True
)
customers_app = typer.Typer(help="Manage customers (tenants).", no_args_is_help=True)
reps_app = typer.Typer(help="Manage customer representatives.", no_args_is_help=True)
apikeys_app = typer.Typer(help="Create and revoke personal API keys.", no_args_is_help=True)
mail_app = typer.Typer(help="Mail kept elsewhere, taken in.", no_args_is_help=True)
app.add_typer(customers_app, name="customers")
app.add_typer(reps_app, name="reps")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(mail_app, name="mail")

T = TypeVar("T")


def _emit(obj: dict[str, Any]) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _fail(message: str, code: str = "ERROR", errors: list[dict[str, str]] | None = None) -> NoReturn:
    body: dict[str, Any] = {"error": message, "code": code}
    if errors:
        body["errors"] = errors
    typer.echo(json.dumps(body), err=True)
    raise typer.Exit(code=1)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Bad input and an unreachable database end the command with a JSON error on stderr, exit 1.

    Scripts call these commands; they get a line they can parse instead of a traceback.
    """
    from alembic.util import CommandError
    from pydantic import ValidationError
    from sqlalchemy.exc import IntegrityError, SQLAlchemyError

    from deskpal.core.errors import DeskpalError

    try:
        yield
    except DeskpalError as exc:
        _fail(exc.detail, exc.code, exc.errors or None)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]) or "value", "message": _message(e["msg"])}
            for e in exc.errors()
        ]
        _fail("; ".join(f"{e['field']}: {e['message']}" for e in errors), "VALIDATION_FAILED", errors)
    except IntegrityError as exc:
        _fail(f"the change conflicts with existing data: {exc.orig}", "CONFLICT")
    except (SQLAlchemyError, OSError, CommandError) as exc:
        _fail(f"database error: {type(exc).__name__}: {exc}".splitlines()[0], "DATABASE_ERROR")


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        errors = [
            {"field": "DESKPAL_" + ".".join(str(p) for p in e["loc"]).upper(), "message": _message(e["msg"])}
            for e in exc.errors()
        ]
        _fail("; ".join(f"{e['field']}: {e['message']}" for e in errors), "BAD_SETTING", errors)


def _with_db(fn: Callable[[Database], Awaitable[T]]) -> T:
    settings = _settings()

    async def run() -> T:
        db = Database(settings.resolved_database_url)
        try:
            return await fn(db)
        finally:
            await db.dispose()

    with _errors():
        return asyncio.run(run())


@app.command()
def migrate() -> None:
    """Apply all database migrations (safe to run again: an up-to-date database is left alone)."""
    from deskpal.migrate import upgrade

    settings = _settings()
    with _errors():
        upgrade(settings.resolved_database_url)
    typer.echo(f"database at head: {_redact(settings.resolved_database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            help="API processes (each runs a job worker, unless DESKPAL_RUN_WORKER=false).",
            min=1,
        ),
    ] = 1,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="Do not apply migrations first.")] = False,
    no_demo: Annotated[bool, typer.Option("--no-demo", help="Do not create the demo customer.")] = False,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request (uvicorn's access log).")
    ] = True,
) -> None:
    """Serve the HTTP API (migrating first, and creating a demo customer on an empty database)."""
    import uvicorn

    from deskpal.demo import ensure_demo_customer
    from deskpal.migrate import upgrade

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with _errors():
        if not no_migrate:
            upgrade(settings.resolved_database_url)
        settings.resolved_secret_key  # noqa: B018 - create the key file before the workers race for it
    if not no_demo:
        demo = _with_db(ensure_demo_customer)
        if demo is not None:
            _print_demo(demo, host, port)
    uvicorn.run(
        "deskpal.asgi:app",
        host=host,
        port=port,
        workers=workers if workers > 1 else None,
        proxy_headers=True,
        log_level="info",
        access_log=access_log,
    )


def _print_demo(demo: dict[str, Any], host: str, port: int) -> None:
    shown = "localhost" if host in {"0.0.0.0", "127.0.0.1", "::"} else host
    lines = [
        "",
        "=" * 72,
        "deskpal: a demo customer was created (shown only this once)",
        f"  admin email:    {demo['adminEmail']}",
        f"  admin password: {demo['adminPassword']}",
        f"  API key:        {demo['apiKey']}",
        f"  try: curl -H 'Authorization: Bearer {demo['apiKey']}' http://{shown}:{port}/api/Channels",
        "=" * 72,
        "",
    ]
    typer.echo("\n".join(lines))
    sys.stdout.flush()


@app.command()
def worker(
    poll: Annotated[
        float | None,
        typer.Option(
            help="Seconds between polls when idle (default: DESKPAL_WORKER_POLL_SECONDS).", min=0.01
        ),
    ] = None,
) -> None:
    """Run a job worker process (run as many as you like, on any machine reaching the database)."""
    from deskpal.core.worker import Worker
    from deskpal.job_types import register_all
    from deskpal.storage import build_storage

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    poll_seconds = settings.worker_poll_seconds if poll is None else poll
    register_all()  # every domain's job types, exactly as `serve` knows them
    from deskpal.core import secretbox

    secretbox.configure(settings.resolved_secret_key, settings.old_secret_key_list)  # channel secrets
    storage = build_storage(settings)  # the store jobs name by its locator, configured as `serve` has it
    from deskpal.email import runtime as email_runtime

    email_runtime.configure(settings, storage)

    async def run(db: Database) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(
            db,
            lease_seconds=settings.job_lease_seconds,
            poll_seconds=poll_seconds,
            concurrency=settings.worker_concurrency,
        )
        await worker.run_forever(stop)

    _with_db(run)


@customers_app.command("create")
def customers_create(
    name: Annotated[str, typer.Argument(help="The customer's name.")],
    admin_email: Annotated[str, typer.Option(help="Email of the customer's first admin.")],
    admin_password: Annotated[
        str | None, typer.Option(help="Their password, 8+ characters (generated and printed when left out).")
    ] = None,
) -> None:
    """Create a customer with an admin and an API key; prints customerID, customerRepID and apiKey."""
    import secrets

    from deskpal.core.errors import ValidationFailed
    from deskpal.customers.schemas import CustomerRepCreateDTO
    from deskpal.customers.service import create_customer

    password = admin_password or secrets.token_urlsafe(12)
    with _errors():
        # Checked before anything is written, with the same rules as the API.
        if not 1 <= len(name.strip()) <= 200:
            raise ValidationFailed.field("name", "must be 1 to 200 characters")
        admin = CustomerRepCreateDTO(name="Admin", email=admin_email, password=password, role=Role.ADMIN)

    async def run(db: Database) -> dict[str, Any]:
        async with transaction(db) as session:
            new = await create_customer(session, name, admin_email=admin.email, admin_password=password)
            return {
                "customerID": new.customer.customer_id,
                "customerRepID": new.admin.customer_rep_id,
                "adminEmail": new.admin.email,
                "adminPassword": password if admin_password is None else None,
                "apiKey": new.api_key,
            }

    _emit({k: v for k, v in _with_db(run).items() if v is not None})


@reps_app.command("create")
def reps_create(
    customer_id: Annotated[
        int, typer.Option("--customer-id", help="The customer the rep belongs to.", min=1, max=MAX_ID)
    ],
    name: Annotated[str, typer.Option(help="Display name.")],
    email: Annotated[str, typer.Option(help="Login email (unique across all customers).")],
    role: Annotated[Role, typer.Option(help="admin, agent, restricted or viewer.")] = Role.AGENT,
    password: Annotated[
        str | None, typer.Option(help="Login password, 8+ characters (none: API keys only).")
    ] = None,
) -> None:
    """Create a customer representative; prints customerRepID."""
    from deskpal.customers.schemas import CustomerRepCreateDTO
    from deskpal.customers.service import create_rep

    with _errors():
        data = CustomerRepCreateDTO(name=name, email=email, role=role, password=password)

    async def run(db: Database) -> dict[str, Any]:
        async with transaction(db, customer_id=customer_id) as session:
            await _customer_exists(session, customer_id)
            rep = await create_rep(Ctx.system(session, customer_id), data)
            return {
                "customerID": customer_id,
                "customerRepID": rep.customer_rep_id,
                "email": rep.email,
                "role": rep.role,
            }

    _emit(_with_db(run))


async def _customer_exists(session: AsyncSession, customer_id: int) -> None:
    from deskpal.core.errors import NotFound
    from deskpal.customers.models import Customer

    if await session.get(Customer, customer_id) is None:
        raise NotFound(f"customer {customer_id} not found")


@apikeys_app.command("create")
def apikeys_create(
    customer_rep_id: Annotated[
        int, typer.Option("--rep-id", help="The representative the key acts as.", min=1, max=MAX_ID)
    ],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "cli",
) -> None:
    """Create an API key for a representative; prints apiKeyID and apiKey (shown only this once)."""
    from deskpal.auth.owners import customer_of_rep
    from deskpal.auth.schemas import ApiKeyCreateDTO
    from deskpal.auth.service import create_api_key

    with _errors():
        data = ApiKeyCreateDTO(name=name)

    async def run(db: Database) -> dict[str, Any]:
        from deskpal.core.errors import NotFound

        async with transaction(db) as session:
            customer_id = await customer_of_rep(session, customer_rep_id)
            if customer_id is None:
                raise NotFound(f"customer rep {customer_rep_id} not found")
            ctx = Ctx.system(session, customer_id)
            key, secret = await create_api_key(ctx, name=data.name, rep_id=customer_rep_id)
            return {
                "apiKeyID": key.api_key_id,
                "customerID": customer_id,
                "customerRepID": customer_rep_id,
                "apiKey": secret,
            }

    _emit(_with_db(run))


@apikeys_app.command("revoke")
def apikeys_revoke(
    api_key_id: Annotated[int, typer.Argument(help="The apiKeyID to revoke.", min=1, max=MAX_ID)],
) -> None:
    """Revoke an API key at once (the row stays, with its revocation time)."""
    from deskpal.auth.owners import customer_of_api_key
    from deskpal.auth.service import revoke_api_key
    from deskpal.core.errors import NotFound

    async def run(db: Database) -> dict[str, Any]:
        async with transaction(db) as session:
            customer_id = await customer_of_api_key(session, api_key_id)
            if customer_id is None:
                raise NotFound(f"API key {api_key_id} not found")
            await revoke_api_key(Ctx.system(session, customer_id), api_key_id)
            return {"apiKeyID": api_key_id, "revoked": True}

    _emit(_with_db(run))


@mail_app.command("import")
def mail_import(
    path: Annotated[Path, typer.Argument(help="An .eml file, a folder of .eml files, an mbox or a Maildir.")],
    channel_id: Annotated[
        int, typer.Option("--channel-id", help="The Email channel the mail came to.", min=1, max=MAX_ID)
    ],
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for the workers to parse and thread what was stored, and count it (threaded, failed).",
        ),
    ] = False,
    wait_seconds: Annotated[
        float, typer.Option(help="With --wait: give up waiting after this long.", min=1)
    ] = 600,
) -> None:
    """Take in mail kept elsewhere: each mail goes through the inbound pipeline as if it had arrived
    (duplicates of mail it has are recognised, so running an import twice stores nothing twice).
    Prints a summary (stored, duplicates, failed); exits 1 when some mail failed."""
    from deskpal.core import secretbox
    from deskpal.email import runtime as email_runtime
    from deskpal.email.inbound import importer
    from deskpal.job_types import register_all
    from deskpal.storage import build_storage

    settings = _settings()
    with _errors():
        source = importer.open_source(path)
    register_all()  # the pipeline's jobs, enqueued with each mail
    secretbox.configure(settings.resolved_secret_key, settings.old_secret_key_list)
    email_runtime.configure(settings, build_storage(settings))  # where the raw mail is written

    async def run(db: Database) -> dict[str, Any]:
        from deskpal.auth.owners import customer_of_channel
        from deskpal.core.errors import NotFound

        async with transaction(db, write=False) as session:
            customer_id = await customer_of_channel(session, channel_id)
        if customer_id is None:
            raise NotFound(f"channel {channel_id} not found")
        with _progress(f"importing {source.kind} {path.name}", source.count) as advance:
            summary = await importer.import_mail(
                db, customer_id=customer_id, channel_id=channel_id, source=source, progress=advance
            )
        report: dict[str, Any] = {
            "channelID": channel_id,
            "path": str(path),
            "kind": source.kind,
            "mails": summary.mails,
            "stored": summary.stored,
            "duplicates": summary.duplicates,
            "failed": summary.failed,
            "seconds": round(summary.seconds, 3),
            "mailsPerSecond": round(summary.mails / summary.seconds, 1) if summary.seconds else None,
        }
        if wait and summary.inbound_mail_ids:
            with _progress("parsing and threading", len(summary.inbound_mail_ids), absolute=True) as done:
                outcomes = await importer.wait_for_pipeline(
                    db,
                    customer_id=customer_id,
                    inbound_mail_ids=summary.inbound_mail_ids,
                    within_seconds=wait_seconds,
                    progress=done,
                )
            report |= {
                "threaded": outcomes.threaded,
                "parseFailed": outcomes.failed,
                "stillPending": outcomes.pending,
            }
        report["failures"] = [{"mail": label, "error": error} for label, error in summary.failures]
        return report

    report = _with_db(run)
    _emit(report)
    if report["failed"]:
        raise typer.Exit(code=1)


@contextlib.contextmanager
def _progress(what: str, total: int, *, absolute: bool = False) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr when it is a terminal (stdout keeps the JSON); else nothing."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=total)

        def advance(n: int) -> None:
            if absolute:
                bar.update(task, completed=n)
            else:
                bar.advance(task, n)

        yield advance


def main() -> None:
    app(prog_name="deskpal")
