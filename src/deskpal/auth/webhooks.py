"""A network calling back (Twilio, Meta's WhatsApp Cloud API, Teams): the route's dependency finds
the channel the call names and checks the call's signature with that channel's secret before the
handler runs, so a webhook route cannot forget either.

    Hook = Annotated[Ctx, webhook("whatsapp", address_of=number_id, signature=meta_signature,
                                  reason="Meta delivers WhatsApp messages; signed with the app secret")]

The handler gets a Ctx of the WEBHOOK kind, bound to the channel's customer and to that channel.
An address no channel answers on and a missing or wrong signature are the same 401, so that a
caller without the secret learns nothing about which addresses exist.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, Request

from deskpal.auth.networks import resolve_channel
from deskpal.channels.models import Channel
from deskpal.core import secretbox
from deskpal.core.context import ActorKind, Ctx
from deskpal.core.db import Database, transaction
from deskpal.core.errors import Unauthorized
from deskpal.core.tenancy import get_now

# (the request, its raw body) -> the address the call names on its network, or None.
AddressOf = Callable[[Request, bytes], str | None]
# (the request, its raw body, the channel's stored settings) -> whether the signature is the network's.
SignatureCheck = Callable[[Request, bytes, dict[str, Any]], bool]


class BadSignature(Unauthorized):
    code, title = "WEBHOOK_SIGNATURE_INVALID", "The request is not signed by the channel's network"


def hmac_sha256_header(header: str, secret_setting: str, *, prefix: str = "sha256=") -> SignatureCheck:
    """The scheme of Meta's X-Hub-Signature-256 (and GitHub's): hex HMAC-SHA256 of the raw body
    with a secret from the channel's settings, compared in constant time."""

    def check(request: Request, body: bytes, settings: dict[str, Any]) -> bool:
        stored = settings.get(secret_setting)
        secret = secretbox.box().open(stored) if isinstance(stored, str) else None
        given = request.headers.get(header, "")
        if not secret or not given.startswith(prefix):
            return False
        expected = hmac.new(str(secret).encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(given[len(prefix) :], expected)

    return check


def webhook(network: str, *, address_of: AddressOf, signature: SignatureCheck, reason: str) -> Any:
    if len(reason) < 20:
        raise ValueError("a webhook route says why the network may call it")

    async def dependency(request: Request) -> AsyncIterator[Ctx]:
        body = await request.body()
        address = address_of(request, body)
        db: Database = request.app.state.db
        async with transaction(db) as session:
            resolved = await resolve_channel(session, network, address) if address else None
            if resolved is None:
                raise BadSignature("no channel of this network answers on the address the call names")
            ctx = Ctx.acting(session, resolved.customer_id, ActorKind.WEBHOOK, channel_id=resolved.channel_id)
            channel = await get_now(session, Channel, resolved.channel_id)
            if channel is None or not signature(request, body, channel.settings):
                raise BadSignature("the signature does not match the channel's secret")
            request.state.actor = ctx.actor
            yield ctx

    dependency.deskpal_public = reason  # type: ignore[attr-defined]
    dependency.deskpal_public_kind = ActorKind.WEBHOOK  # type: ignore[attr-defined]
    dependency.deskpal_webhook = (network, signature)  # type: ignore[attr-defined]
    return Depends(dependency, scope="function")
