"""Another customer's token against every id-taking route of the first customer: 404, as if absent."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from tests.cross_tenant import REGISTRY
from tests.routes import is_public, iter_api_routes
from tests.support import Tenant


def _id_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (info.method, info.path)
        for info in iter_api_routes(app)
        if "{" in info.path
        and info.path.lower().startswith(("/api/", "/helpdesk/api/"))
        and not is_public(info.route)
    )


def test_every_id_taking_route_is_in_the_walk(app: FastAPI) -> None:
    missing = sorted({path for _, path in _id_routes(app) if path not in REGISTRY})
    assert not missing, f"add these to tests/cross_tenant.py: {missing}"


async def test_other_customer_gets_404_on_every_id_route(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    failures = []
    for method, path in _id_routes(app):
        entry = REGISTRY[path]
        params = await entry.make(app, tenant)
        url = path.format(**params)
        body = entry.bodies.get(method)
        # A body may name the object's own ids (made per run): then it is a function of the params.
        kwargs = {"json": body(params) if callable(body) else body} if method in entry.bodies else {}
        intruder, owner_headers = other_tenant.headers, tenant.headers
        if entry.headers is not None:
            intruder, owner_headers = entry.headers(app, other_tenant), entry.headers(app, tenant)
        r = await client.request(method, url, headers=intruder, **kwargs)
        if r.status_code != 404:
            failures.append(f"{method} {url}: {r.status_code} {r.text[:200]}")
            continue
        if r.headers["content-type"] != "application/problem+json":
            failures.append(f"{method} {url}: 404 is not problem+json")
        # The object is still there for its owner: the 404 hid it, it did not act on it.
        owner = await client.request(method, url, headers=owner_headers, **kwargs)
        if owner.status_code == 404:
            failures.append(f"{method} {url}: the owner gets 404 too, so the walk proved nothing")
    assert not failures, "\n".join(failures)
