"""TEMPORARY stand-in for the inbound pipeline's receive() (email/inbound/receive.py, branch
inbound-pipeline), for these tests only: to be replaced by the real one once it is merged.

`install()` replaces handoff.store, the one door IMAP polling and the import command use, with a
recorder that keeps what a real receive() would have made durable: a mail counts as stored only
when the transaction it was handed over in commits (rolled back, it never arrived). Like the real
one it tells a duplicate by Message-ID on the same channel, so tests of the poller's and the
importer's counting work unchanged; `handed` counts every hand-over, duplicates included, which is
what shows a refetch. A mail with an `X-Standin-Refuse` header is refused with an error, as the
pipeline would refuse one it cannot take. In another process (a `deskpal worker` under test) the
records go to a file: `python -m tests.mail_in_imap.standin FILE worker` runs the worker with the
stand-in installed (STANDIN_DELAY_SECONDS: how long each hand-over takes).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from sqlalchemy import event

from deskpal.channels.models import Channel
from deskpal.core.context import Ctx
from deskpal.email.inbound import handoff

_ids = itertools.count(1)


def message_key(raw: bytes) -> str:
    """Message-ID (what the real dedupe compares), else the bytes' digest."""
    message_id = BytesHeaderParser().parsebytes(raw).get("Message-ID")
    return str(message_id).strip() if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass
class Recorder:
    path: Path | None = None  # records appended here (one JSON line each) instead of kept in memory
    delay: float = 0.0  # seconds each hand-over takes (a slow store: kills land mid-batch)
    committed: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _commit(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            if self.path is not None:
                with self.path.open("a") as fh:
                    fh.write("".join(json.dumps(r) + "\n" for r in records))
                    fh.flush()
                    os.fsync(fh.fileno())
            else:
                self.committed.extend(records)

    def records(self) -> list[dict[str, Any]]:
        if self.path is not None:
            if not self.path.exists():
                return []
            return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        with self._lock:
            return list(self.committed)

    def stored(self) -> Counter[str]:
        """Message key -> how often it was stored as new (the real pipeline: 1 each)."""
        return Counter(r["key"] for r in self.records() if not r["duplicate"])

    def handed(self) -> Counter[str]:
        """Message key -> how often it was handed over and committed, duplicates included."""
        return Counter(r["key"] for r in self.records())

    def attempts(self) -> int:
        """Hand-overs made, committed or not (a file-backed recorder only)."""
        found = self.path.with_suffix(".attempts") if self.path is not None else None
        return len(found.read_text().splitlines()) if found is not None and found.exists() else 0

    def raw_of(self, key: str) -> bytes:
        return next(bytes.fromhex(r["raw"]) for r in self.records() if r["key"] == key)

    async def store(
        self, ctx: Ctx, channel: Channel, raw: bytes, *, source: handoff.Source
    ) -> handoff.Stored:
        if self.path is not None:  # every hand-over, committed or not: what a kill cut short shows
            with self.path.with_suffix(".attempts").open("a") as fh:
                fh.write(message_key(raw) + "\n")
        if self.delay:
            await asyncio.sleep(self.delay)
        if b"\nX-Standin-Refuse:" in raw:  # a mail the pipeline cannot take (its error, as it would raise)
            raise ValueError("the stand-in refuses this mail")
        session = ctx.db.sync_session
        pending: list[dict[str, Any]] | None = session.info.get("standin")
        if pending is None:
            pending = session.info["standin"] = []

            def committed(_session: Any) -> None:
                records = list(session.info.pop("standin", []))
                if records:
                    self._commit(records)

            def rolled_back(_session: Any) -> None:
                session.info.pop("standin", None)

            event.listen(session, "after_commit", committed)
            event.listen(session, "after_rollback", rolled_back)
        key = message_key(raw)
        known = {(r["channel"], r["key"]) for r in self.records()} | {
            (r["channel"], r["key"]) for r in pending
        }
        duplicate = (channel.channel_id, key) in known
        pending.append(
            {
                "channel": channel.channel_id,
                "key": key,
                "source": source,
                "duplicate": duplicate,
                "raw": raw.hex(),
                "pid": os.getpid(),
            }
        )
        return handoff.Stored(inbound_mail_id=next(_ids), duplicate=duplicate)


def install(recorder: Recorder) -> None:
    handoff.store = recorder.store  # type: ignore[assignment]


def main() -> None:
    """`python -m tests.mail_in_imap.standin FILE ARGS…`: the deskpal command line with the
    stand-in recording to FILE."""
    install(Recorder(Path(sys.argv[1]), delay=float(os.environ.get("STANDIN_DELAY_SECONDS", "0"))))
    from deskpal.cli import app

    app(args=sys.argv[2:], prog_name="deskpal")


if __name__ == "__main__":
    main()
