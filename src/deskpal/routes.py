"""Every router of the app, and the routes that take no credentials (each with its reason)."""

from __future__ import annotations

from fastapi import APIRouter

from deskpal.attachments.api import files_router
from deskpal.attachments.api import router as attachments_router
from deskpal.auth.api import router as auth_router
from deskpal.channels.api import router as channels_router
from deskpal.customers.api import router as reps_router
from deskpal.customfields.api import router as customfields_router
from deskpal.endusers.api import router as endusers_router
from deskpal.helpdesk.api import router as helpdesk_router
from deskpal.jobs.api import router as jobs_router
from deskpal.messages.api import router as messages_router
from deskpal.messages.api import topics_router as message_topics_router
from deskpal.tickets.api import router as tickets_router
from deskpal.topics.api import router as topics_router

# Order is speed: the router tries each route in turn until one matches, so the routes agents and
# integrations call all day (tickets, messages) come first (~35 fewer patterns per ticket request).
ROUTERS: list[APIRouter] = [
    tickets_router,
    messages_router,
    attachments_router,
    message_topics_router,
    helpdesk_router,
    files_router,
    endusers_router,
    auth_router,
    channels_router,
    topics_router,
    reps_router,
    customfields_router,
    jobs_router,
]

# (method, path) -> why it needs no credentials. A test fails for any other /api route without `require`.
PUBLIC_ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/Auth/login"): "exchanges email and password for a token; rate-limited",
    ("POST", "/api/Tickets/createchatticket"): (
        "the anonymous chat widget opens a ticket: Chat channel token plus an allowed Origin/Referer "
        "host; rate-limited per address"
    ),
    ("GET", "/api/File/{accessToken}"): (
        "attachment bytes for links in mail and chat (the reference marks it public): the random "
        "uuid accessToken is the credential; wrong or deleted tokens are 404"
    ),
}
