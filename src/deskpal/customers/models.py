"""Customers (tenants) and their representatives."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from deskpal.core.db import Base, IdType, UTCDateTime, utcnow
from deskpal.core.security import new_token_key
from deskpal.core.tenancy import TenantOwned


class Customer(Base):
    __tablename__ = "customer"

    customer_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class CustomerRep(TenantOwned, Base):
    __tablename__ = "customer_rep"

    customer_rep_id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # Stored lower-cased and unique across customers: a login names an account by email alone.
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # In every login token of this rep, and compared on each request: replaced when the rep's
    # tokens must stop working (deactivated, new password or email, fewer rights), and random so
    # that a token never names another rep, even one that was given the same id.
    token_key: Mapped[str] = mapped_column(String(32), nullable=False, default=new_token_key)
