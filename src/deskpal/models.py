"""Imports every table, so that Base.metadata knows the whole schema (Alembic, tests)."""

from deskpal.attachments.models import TicketMessageAttachment
from deskpal.auth.models import ApiKey
from deskpal.channels.models import Channel, ChannelAddress
from deskpal.core.db import Base
from deskpal.core.jobs import JobRow
from deskpal.core.ratelimit import RateLimitBucket
from deskpal.customers.models import Customer, CustomerRep
from deskpal.customfields.models import CustomFieldDefinition
from deskpal.email.inbound.imap_models import ImapMailbox
from deskpal.email.inbound.models import InboundMail
from deskpal.email.models import EmailSuppression, EmailTemplate
from deskpal.endusers.models import EndUser
from deskpal.messages.models import TicketMessage, TicketMessageTopic
from deskpal.tickets.models import Ticket, TicketCount, TicketEndUser, TicketTopic
from deskpal.topics.models import Topic

__all__ = [
    "ApiKey",
    "Base",
    "Channel",
    "ChannelAddress",
    "CustomFieldDefinition",
    "Customer",
    "CustomerRep",
    "EmailSuppression",
    "EmailTemplate",
    "EndUser",
    "ImapMailbox",
    "InboundMail",
    "JobRow",
    "RateLimitBucket",
    "Ticket",
    "TicketCount",
    "TicketEndUser",
    "TicketMessage",
    "TicketMessageAttachment",
    "TicketMessageTopic",
    "TicketTopic",
    "Topic",
]
