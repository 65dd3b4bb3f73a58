"""`deskpal mail import`: an .eml file, a folder of them, an mbox and a Maildir, through the one
door into the pipeline (the TEMPORARY stand-in for receive() until the pipeline is merged), on
both databases; the real command in a process of its own, and the importer's batches in-process."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from deskpal.email.inbound import importer
from tests.cli.support import REPO, Result
from tests.mail_in_imap.standin import Recorder, message_key
from tests.support import Tenant, db_of


def mail(n: int, *, refuse: bool = False) -> bytes:
    extra = "X-Standin-Refuse: yes\n" if refuse else ""
    return (
        f"From: Customer {n} <c{n}@example.test>\nTo: support@acme.test\nSubject: Imported {n}\n"
        f"Message-ID: <import-{n}-{uuid.uuid4().hex}@example.test>\n{extra}\nOld question {n}.\n"
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
    body = {"name": "Archive", "channelType": "Email", "settings": {"fromAddress": "archive@acme.test"}}
    r = await client.post("/api/Channels", json=body, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["channelID"])


async def run_import(app: FastAPI, record: Path, *args: str) -> Result:
    """`deskpal mail import ARGS`, in a process, with the stand-in recording to `record`."""
    settings = app.state.settings
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "DESKPAL_DATABASE_URL": settings.resolved_database_url,
        "DESKPAL_DATA_DIR": str(settings.data_dir),
        "DESKPAL_SECRET_KEY": settings.resolved_secret_key,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mail_in_imap.standin",
        str(record),
        "mail",
        "import",
        *args,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(["mail", "import", *args], proc.returncode, out.decode(), err.decode())


class TestCommand:
    async def test_mbox_maildir_folder_and_eml_are_each_imported_in_order(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        sources = {
            "mbox": (write_mbox, [mail(n) for n in range(4)]),
            "maildir": (write_maildir, [mail(n) for n in range(3)]),
            "folder": (write_folder, [mail(n) for n in range(5)]),
        }
        paths = {kind: make(tmp_path / kind, mails) for kind, (make, mails) in sources.items()}
        single = mail(99)
        (tmp_path / "one.eml").write_bytes(single)
        paths["eml"] = tmp_path / "one.eml"
        records = {kind: tmp_path / f"{kind}.jsonl" for kind in paths}
        results = await asyncio.gather(
            *(
                run_import(app, records[kind], "--channel-id", str(channel_id), str(p))
                for kind, p in paths.items()
            )
        )
        expected = {kind: mails for kind, (_, mails) in sources.items()} | {"eml": [single]}
        for kind, result in zip(paths, results, strict=True):
            report = result.json()
            n = len(expected[kind])
            assert report["kind"] == kind, report
            assert (report["mails"], report["stored"], report["duplicates"], report["failed"]) == (n, n, 0, 0)
            assert report["channelID"] == channel_id and report["failures"] == []
            recorded = Recorder(records[kind]).records()
            assert {r["source"] for r in recorded} == {"import"}
            if kind == "folder":  # in path order: 2025/'s files (the odd ones), then the top folder's
                ordered = expected[kind][1::2] + expected[kind][::2]
                assert [bytes.fromhex(r["raw"]) for r in recorded] == ordered
            else:
                assert [bytes.fromhex(r["raw"]) for r in recorded] == expected[kind]

    async def test_importing_again_counts_duplicates_and_refused_mail_fails_alone(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        path = write_mbox(tmp_path / "archive.mbox", [mail(1), mail(2, refuse=True), mail(3)])
        record = tmp_path / "record.jsonl"
        first = await run_import(app, record, "--channel-id", str(channel_id), str(path))
        assert first.returncode == 1, first.describe()  # some mail failed: the summary still printed
        report = json.loads(first.stdout)
        assert (report["stored"], report["duplicates"], report["failed"]) == (2, 0, 1)
        assert report["failures"] == [
            {"mail": "archive.mbox #2", "error": "ValueError: the stand-in refuses this mail"}
        ]
        again = await run_import(app, record, "--channel-id", str(channel_id), str(path))
        report = json.loads(again.stdout)
        assert (report["stored"], report["duplicates"], report["failed"]) == (0, 2, 1)

    async def test_bad_input_is_a_json_error(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        phone = await client.post(
            "/api/Channels", json={"name": "Hotline", "channelType": "Phone"}, headers=tenant.headers
        )
        eml = tmp_path / "one.eml"
        eml.write_bytes(mail(1))
        (tmp_path / "empty").mkdir()
        record = tmp_path / "unused.jsonl"
        cases = {
            "NOT_FOUND": ["--channel-id", "424242", str(eml)],
            "NOT_AN_EMAIL_CHANNEL": ["--channel-id", str(phone.json()["channelID"]), str(eml)],
            "NOT_A_MAIL_SOURCE": ["--channel-id", str(channel_id), str(tmp_path / "missing.mbox")],
            "NOT_A_MAIL_SOURCE ": ["--channel-id", str(channel_id), str(tmp_path / "empty")],
        }
        results = await asyncio.gather(*(run_import(app, record, *args) for args in cases.values()))
        for code, result in zip(cases, results, strict=True):
            assert result.error()["code"] == code.strip(), result.describe()
        assert Recorder(record).records() == []


class TestImporter:
    async def test_batches_of_a_big_mbox_are_all_stored(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path, recorder: Recorder
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
        assert set(recorder.stored()) == {message_key(m) for m in mails}

    async def test_another_customer_s_channel_is_not_found(
        self, app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, tmp_path: Path
    ) -> None:
        channel_id = await email_channel(client, tenant)
        (tmp_path / "x.eml").write_bytes(mail(1))
        source = importer.open_source(tmp_path / "x.eml")
        from deskpal.core.errors import NotFound

        with pytest.raises(NotFound):
            await importer.import_mail(
                db_of(app), customer_id=other_tenant.customer_id, channel_id=channel_id, source=source
            )
