"""Custom field definitions: the fields a customer adds to tickets and messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.enums import CaseInsensitiveEnum
from deskpal.core.tenancy import TenantOwned


class FieldType(CaseInsensitiveEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    URL = "url"
    SELECT = "select"
    MULTISELECT = "multiselect"


class EntityType(CaseInsensitiveEnum):
    TICKET = "Ticket"
    TICKET_MESSAGE = "TicketMessage"


class CustomFieldDefinition(TenantOwned, Base):
    __tablename__ = "custom_field_definition"
    __table_args__ = (UniqueConstraint("customer_id", "entity_type", "name"),)

    custom_field_definition_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)  # the key in customFieldsData
    label: Mapped[str | None] = mapped_column(String(200))
    field_type: Mapped[str] = mapped_column(String(20), nullable=False)
    entity_type: Mapped[str] = mapped_column(String(20), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    options: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
