"""`deskpal mail import`: an .eml file, a folder of them, an mbox and a Maildir, through the one
door into the inbound pipeline, on both databases; the real command in a process of its own, and
the importer's batches and failures in-process."""

from __future__ import annotations

import asyncio
import mailbox
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from deskpal.core.errors import NotFound
from deskpal.core.worker import Worker
from deskpal.email.inbound import handoff, importer
from tests.cli.support import REPO, Result
from tests.mail_in_imap.inbox import Inbox, message_id_of
from tests.support import Tenant, db_of


def mail(n: int) -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.test>\nTo: support@acme.test\nSubject: Imported {n}\n"
        f"Message-ID: <import-{n}-{uuid.uuid4().hex}@example.test>\n\nOld question {n}.\n"
    ).encode()


def write_mbox(path: Path, mails: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for raw in mails:
        box.add(raw)
    box.close()
    return path


def write_maildir(path: Path, mails: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for raw in mails:
        box.add(raw)
    return path


def write_folder(path: Path, mails: list[bytes]) -> Path:
    (path / "2025").mkdir(parents=True)
    for n, raw in enumerate(mails):
        where = path / "2025" if n % 2 else path
        (where / f"mail-{n:03d}.eml").write_bytes(raw)
    (path / "notes.txt").write_text("not a mail")
    return path


async def email_channel(client: httpx.AsyncClient, tenant: Tenant) -> int:
    address = f"archive-{uuid.uuid4().hex[:8]}@acme.test"  # a channel's address is its own
    body = {"name": "Archive", "channelType": "Email", "settings": {"fromAddress": address}}
    r = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["channelID"])


async def run_import(app: FastAPI, *args: str) -> Result:
    """`deskpal mail import ARGS`, in a process of its own, on the test's database and storage."""
    settings = app.state.settings
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "DESKPAL_DATABASE_URL": settings.resolved_database_url,
        "DESKPAL_DATA_DIR": str(settings.data_dir),
        "DESKPAL_SECRET_KEY": settings.resolved_secret_key,
    }
    if settings.storage_url:
        env["DESKPAL_STORAGE_URL"] = settings.storage_url
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "deskpal",
        "mail",
        "import",
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return Result(["mail", "import", *args], proc.returncode, out.decode(), err.decode())


async def raws_of(app: FastAPI, inbox: Inbox, channel_id: int) -> list[bytes]:
    storage = app.state.storage
    return [await storage.read_all(r.storage_key) for r in await inbox.rows() if r.channel_id == channel_id]


class TestCommand:
    async def test_mbox_maildir_folder_and_eml_are_each_imported_in_order(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, inbox: Inbox, tmp_path: Path
    ) -> None:
        sources = {
            "mbox": (write_mbox, [mail(n) for n in range(4)]),
            "maildir": (write_maildir, [mail(n) for n in range(3)]),
            "folder": (write_folder, [mail(n) for n in range(5)]),
        }
        paths = {kind: make(tmp_path / kind, mails) for kind, (make, mails) in sources.items()}
        single = mail(99)
        (tmp_path / "one.eml").write_bytes(single)
        paths["eml"] = tmp_path / "one.eml"
        channels = {kind: await email_channel(client, tenant) for kind in paths}  # one each, side by side
        results = await asyncio.gather(
            *(run_import(app, "--channel-id", str(channels[kind]), str(p)) for kind, p in paths.items())
        )
        expected = {kind: mails for kind, (_, mails) in sources.items()} | {"eml": [single]}
        # A folder is read in path order: 2025/'s files (the odd ones), then the top folder's.
        expected["folder"] = expected["folder"][1::2] + expected["folder"][::2]
        rows = await inbox.rows()
        assert {r.source for r in rows} == {"import"}
        for kind, result in zip(paths, results, strict=True):
            report = result.json()
            n = len(expected[kind])
            assert report["kind"] == kind, report
            assert (report["mails"], report["stored"], report["duplicates"], report["failed"]) == (n, n, 0, 0)
            assert report["channelID"] == channels[kind] and report["failures"] == []
            assert await raws_of(app, inbox, channels[kind]) == expected[kind], kind

    async def test_importing_again_stores_nothing_twice(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, inbox: Inbox, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        mails = [mail(n) for n in range(3)]
        path = write_mbox(tmp_path / "archive.mbox", mails)
        first = (await run_import(app, "--channel-id", str(channel_id), str(path))).json()
        assert (first["stored"], first["duplicates"], first["failed"]) == (3, 0, 0)
        again = (await run_import(app, "--channel-id", str(channel_id), str(path))).json()
        assert (again["stored"], again["duplicates"], again["failed"]) == (0, 3, 0)
        assert await inbox.originals() == {message_id_of(m): 1 for m in mails}
        assert await inbox.arrivals() == {message_id_of(m): 2 for m in mails}

    async def test_wait_counts_what_the_workers_threaded(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        path = write_mbox(tmp_path / "archive.mbox", [mail(n) for n in range(3)])
        stop = asyncio.Event()
        worker = asyncio.create_task(Worker(db_of(app), poll_seconds=0.05, daemons=False).run_forever(stop))
        try:
            result = await run_import(app, "--channel-id", str(channel_id), "--wait", str(path))
        finally:
            stop.set()
            await worker
        report = result.json()
        assert (report["stored"], report["threaded"], report["parseFailed"], report["stillPending"]) == (
            3,
            3,
            0,
            0,
        )

    async def test_bad_input_is_a_json_error(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, inbox: Inbox, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        phone = await client.post(
            "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
        )
        eml = tmp_path / "one.eml"
        eml.write_bytes(mail(1))
        (tmp_path / "empty").mkdir()
        cases = [
            ("NOT_FOUND", ["--channel-id", "424242", str(eml)]),
            ("NOT_AN_EMAIL_CHANNEL", ["--channel-id", str(phone.json()["channelID"]), str(eml)]),
            ("NOT_A_MAIL_SOURCE", ["--channel-id", str(channel_id), str(tmp_path / "missing.mbox")]),
            ("NOT_A_MAIL_SOURCE", ["--channel-id", str(channel_id), str(tmp_path / "empty")]),
        ]
        results = await asyncio.gather(*(run_import(app, *args) for _, args in cases))
        for (code, _), result in zip(cases, results, strict=True):
            assert result.error()["code"] == code, result.describe()
        assert await inbox.rows() == []


class TestImporter:
    async def test_batches_of_a_big_mbox_are_all_stored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, inbox: Inbox, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        mails = [mail(n) for n in range(250)]
        source = importer.open_source(write_mbox(tmp_path / "big.mbox", mails))
        assert (source.kind, source.count) == ("mbox", 250)
        seen: list[int] = []
        summary = await importer.import_mail(
            db_of(app),
            customer_id=tenant.customer_id,
            channel_id=channel_id,
            source=source,
            batch_size=100,
            progress=seen.append,
        )
        assert seen == [100, 100, 50]
        assert (summary.mails, summary.stored, summary.failed) == (250, 250, 0)
        assert len(summary.inbound_mail_ids) == 250
        assert await inbox.originals() == {message_id_of(m): 1 for m in mails}

    async def test_a_mail_the_pipeline_refuses_fails_alone(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        tenant: Tenant,
        inbox: Inbox,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        channel_id = await email_channel(client, tenant)
        mails = [mail(n) for n in range(5)]
        refused = message_id_of(mails[2])
        record = handoff.record

        async def refusing(ctx: Any, channel: Any, staged: Any, **kwargs: Any) -> Any:
            stored = await record(ctx, channel, staged, **kwargs)  # written, then refused: rolled back
            if staged.header.message_id == refused:
                raise ValueError("the pipeline cannot take this one")
            return stored

        monkeypatch.setattr(handoff, "record", refusing)
        source = importer.open_source(write_mbox(tmp_path / "archive.mbox", mails))
        summary = await importer.import_mail(
            db_of(app), customer_id=tenant.customer_id, channel_id=channel_id, source=source
        )
        assert (summary.stored, summary.failed) == (4, 1)
        assert summary.failures == [("archive.mbox #3", "ValueError: the pipeline cannot take this one")]
        assert set(await inbox.originals()) == {message_id_of(m) for m in mails} - {refused}

    async def test_another_customer_s_channel_is_not_found(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        (tmp_path / "x.eml").write_bytes(mail(1))
        source = importer.open_source(tmp_path / "x.eml")
        with pytest.raises(NotFound):
            await importer.import_mail(
                db_of(app), customer_id=other_tenant.customer_id, channel_id=channel_id, source=source
            )
