"""/docs in a real browser: Swagger UI renders every operation with nothing fetched from outside.

Issue 10, point 14: the page loaded Swagger UI from a public CDN, so without internet access (or
under a Content-Security-Policy) it was blank. Every request the page makes is recorded; one to
any host but 127.0.0.1 is blocked and fails the test.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support import Tenant


async def test_docs_render_every_operation_without_an_outside_request(
    browser: Any, live_url: str, tenant: Tenant
) -> None:
    from playwright.async_api import TimeoutError as PlaywrightTimeout  # the browser fixture checked it

    async with httpx.AsyncClient() as plain:  # the server runs in this event loop: never block it
        spec = (await plain.get(f"{live_url}/openapi.json")).json()
    # Swagger UI shows an operation once under each of its tags.
    operations = sum(len(op.get("tags") or [None]) for ops in spec["paths"].values() for op in ops.values())
    context = await browser.new_context()
    outside: list[str] = []
    local: list[str] = []
    problems: list[str] = []

    async def only_local(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1":
            local.append(url)
            await route.continue_()
        else:
            outside.append(url)
            await route.abort()

    await context.route("**/*", only_local)
    page = await context.new_page()
    # A CSP violation or a script error shows here (Chromium logs "Refused to load …" as an error).
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    response = await page.goto(f"{live_url}/docs")
    assert response is not None and response.status == 200

    tickets = page.locator(".opblock.opblock-get .opblock-summary-path[data-path='/api/Tickets']")
    try:
        await tickets.first.wait_for(state="visible", timeout=30_000)
    except PlaywrightTimeout:
        raise AssertionError(f"no GET /api/Tickets shown; outside: {outside}; errors: {problems}") from None
    assert await tickets.first.inner_text() == "/api/Tickets"
    assert await page.locator(".opblock").count() == operations
    assert "default-src 'none'" in response.headers["content-security-policy"]

    # Authorize with a real key and run GET /api/Channels through "Try it out": the UI's own calls
    # go to deskpal's origin, which the page's CSP (connect-src 'self') allows.
    await page.locator("button.authorize").first.click()
    key_field = page.locator(".modal-ux input[type=text], .modal-ux input[type=password]").first
    await key_field.fill(tenant.api_key)
    await page.locator(".modal-ux button.authorize").first.click()
    await page.locator(".modal-ux button.close-modal").first.click()
    channels = page.locator(".opblock-get:has(.opblock-summary-path[data-path='/api/Channels'])").first
    await channels.locator(".opblock-summary").click()
    await channels.locator("button.try-out__btn").click()
    await channels.locator("button.execute").click()
    status = channels.locator(".live-responses-table .response .response-col_status").first
    await status.wait_for(state="visible", timeout=30_000)
    assert (await status.inner_text()).strip() == "200"
    await context.close()

    assert outside == [], f"requests to other hosts: {outside}"
    assert any(u.endswith("/openapi.json") for u in local) and any("/api/Channels" in u for u in local)
    assert problems == [], f"errors in the page: {problems}"
