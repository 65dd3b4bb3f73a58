"""GET /api/TicketMessages/ot and GET, POST /api/TicketMessages/unsubscribejobad: what sent mail links to.

Mounted before the TicketMessages router (rank), so that `ot` is never read as a message id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from deskpal.auth.owners import customer_of_open_token
from deskpal.core.context import ActorKind
from deskpal.core.head import is_head
from deskpal.core.permissions import PublicUnit, public, write_unit
from deskpal.core.routing import mount
from deskpal.core.strict_requests import tolerates_unknown_query
from deskpal.email import tracking

router = mount(APIRouter(prefix="/api/TicketMessages", tags=["TicketMessages"]), rank=15)

_FROM_MAIL = tolerates_unknown_query(
    "opened from mail: clients, proxies and link scanners append parameters of their own"
)
# Never cached: a cached pixel counts no second open, and a cached page hides a change.
_NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
# The pages load nothing and run nothing, and the token in their URL is sent nowhere.
_PAGE_HEADERS = {
    **_NO_CACHE,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
_GIF: dict[int | str, dict[str, Any]] = {
    200: {"description": "a 1x1 transparent GIF, whatever the token", "content": {"image/gif": {}}}
}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the confirmation page", "content": _HTML},
    404: {"description": "the link is not valid (an HTML page)", "content": _HTML},
}
Token = Annotated[str | None, Query(description="The token of the link in the mail.")]


@router.get("/ot", response_class=Response, responses=_GIF, dependencies=[_FROM_MAIL])
async def open_pixel(
    request: Request,
    unit: Annotated[
        PublicUnit,
        public(
            ActorKind.LINK,
            write=False,
            reason="the open-tracking pixel in sent mail (the reference marks it public): the message's "
            "unguessable open token is the credential; any other token changes nothing",
        ),
    ],
    token: Token = None,
) -> Response:
    """Always the same GIF, never cached; only the token of an outgoing message counts an open
    (isOpened, lastOpenDate, openCount). HEAD changes nothing; unknown parameters are ignored."""
    if not is_head(request) and tracking.is_open_token(token):
        customer_id = await customer_of_open_token(unit.db, token)
        if customer_id is not None:
            async with write_unit(request, unit.bind(customer_id)) as ctx:
                await tracking.record_open(ctx, token)
    return Response(tracking.PIXEL_GIF, media_type="image/gif", headers=_NO_CACHE)


_UNSUBSCRIBE_REASON = (
    "the job-ad unsubscribe link of sent mail and its RFC 8058 one-click POST (public in the reference): "
    "the token is signed with the server's key; any other token is 404"
)


async def _unsubscribe(request: Request, unit: PublicUnit, token: str | None) -> HTMLResponse:
    found = tracking.read_unsubscribe_token(token)
    if found is None:
        return HTMLResponse(tracking.invalid_link_page(), status_code=404, headers=_PAGE_HEADERS)
    customer_id, message_id = found
    ctx = unit.bind(customer_id)
    done: tuple[str, int] | None
    if is_head(request):
        job_ad = await tracking.find_job_ad_message(ctx, message_id)
        done = (job_ad[1], 0) if job_ad else None
    else:
        async with write_unit(request, ctx) as writing:
            done = await tracking.unsubscribe(writing, message_id)
    if done is None:
        return HTMLResponse(tracking.invalid_link_page(), status_code=404, headers=_PAGE_HEADERS)
    return HTMLResponse(tracking.unsubscribed_page(done[0]), headers=_PAGE_HEADERS)


@router.get("/unsubscribejobad", response_class=HTMLResponse, responses=_PAGES, dependencies=[_FROM_MAIL])
async def unsubscribe_job_ad(
    request: Request,
    unit: Annotated[PublicUnit, public(ActorKind.LINK, write=False, reason=_UNSUBSCRIBE_REASON)],
    token: Token = None,
) -> HTMLResponse:
    """Stop mail about the message's job ad to its To addresses; a small HTML confirmation, the
    same when the link is used again (nothing more is written). A wrong token is a 404 page."""
    return await _unsubscribe(request, unit, token)


@router.post("/unsubscribejobad", response_class=HTMLResponse, responses=_PAGES, dependencies=[_FROM_MAIL])
async def unsubscribe_job_ad_one_click(
    request: Request,
    unit: Annotated[PublicUnit, public(ActorKind.LINK, write=False, reason=_UNSUBSCRIBE_REASON)],
    token: Token = None,
) -> HTMLResponse:
    """RFC 8058 one-click: what mail providers POST (`List-Unsubscribe=One-Click`, form-encoded);
    the body is not read. Answers as GET does."""
    return await _unsubscribe(request, unit, token)
