"""Registers every job type: API processes and `deskpal worker` must know the same kinds."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import deskpal


@functools.cache
def register_all() -> frozenset[str]:
    """Import each domain's `jobs` module (and core's system jobs); return the module names."""
    names = [
        m.name
        for m in pkgutil.walk_packages(deskpal.__path__, "deskpal.")
        if m.name.rsplit(".", 1)[-1] in {"jobs", "system_jobs"}
    ]
    # Every table first: handlers load models whose relationships name other domains' classes.
    importlib.import_module("deskpal.models")
    for name in names:
        importlib.import_module(name)
    return frozenset(names)
