"""HEAD on every GET route: the same status and headers as GET, without the body (RFC 9110 9.3.2).

FastAPI's routes answer only the methods they declare, so HEAD was 405 everywhere, including on the
file routes that clients probe for a size before a ranged download. Rather than declaring HEAD on
each route (and again in the schema), this middleware routes a HEAD request as its GET and drops the
body of the answer; `Content-Length` stays what GET would send. Handlers that can skip work for
HEAD (the file routes: no read from storage) ask `is_head(request)`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_MARK = "deskpal.head"


def is_head(request: Request) -> bool:
    """The client sent HEAD (the route sees GET): the body will be dropped, so need not be made."""
    return bool(request.scope.get(_MARK))


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        scope = dict(scope, method="GET")
        scope[_MARK] = True

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # only the last (empty) body message goes out
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, receive, without_body)
