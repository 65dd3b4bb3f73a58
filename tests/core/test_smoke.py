from __future__ import annotations

import httpx

from tests.support import Tenant


async def test_admin_lists_channels(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/api/channels", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"items": [], "totalCount": 0, "totalPages": 0}
    r = await client.post(
        "/api/Channels", headers=tenant.headers, json={"name": "Phone", "channelType": "Phone"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["phoneAuthToken"].startswith("dpp_")
