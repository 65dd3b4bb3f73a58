"""The app's routers: each package mounts its own (core/routing.py); this is the order they run in."""

from __future__ import annotations

from fastapi import APIRouter

from deskpal.core.routing import discover


def routers() -> tuple[APIRouter, ...]:
    return discover()
