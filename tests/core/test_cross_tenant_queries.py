"""Queries across customers stay in core/ and auth/, where they are few and reviewed."""

from __future__ import annotations

from pathlib import Path

import deskpal

ALLOWED = {"core", "auth"}


def test_all_tenants_appears_only_in_core_and_auth() -> None:
    root = Path(deskpal.__file__).parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "all_tenants" in path.read_text() and path.relative_to(root).parts[0] not in ALLOWED
    ]
    assert not offenders, f"cross-tenant queries outside core/ and auth/: {offenders}"
