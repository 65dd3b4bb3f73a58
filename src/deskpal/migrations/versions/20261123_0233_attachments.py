"""attachments: ticket_message_attachment (metadata of files kept in storage, by storage_key)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 02:33:28.525843
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import deskpal.core.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_message_attachment",
        sa.Column(
            "ticket_message_attachment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("file_size_bytes", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", deskpal.core.db.UTCDateTime(), nullable=False),
        sa.Column("is_end_user_provided", sa.Boolean(), nullable=False),
        sa.Column("is_customer_rep_provided", sa.Boolean(), nullable=False),
        sa.Column(
            "converted_from_attachment_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("content_id", sa.String(length=255), nullable=True),
        sa.Column("access_token", sa.String(length=36), nullable=False),
        sa.Column("storage_key", sa.String(length=200), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["converted_from_attachment_id"],
            ["ticket_message_attachment.ticket_message_attachment_id"],
            name=op.f("fk_ticket_message_attachment_converted_from_attachment_id_ticket_message_attachment"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.customer_id"],
            name=op.f("fk_ticket_message_attachment_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["ticket_message.message_id"],
            name=op.f("fk_ticket_message_attachment_message_id_ticket_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_message_attachment_id", name=op.f("pk_ticket_message_attachment")),
        sa.UniqueConstraint("access_token", name=op.f("uq_ticket_message_attachment_access_token")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_ticket_message_attachment_storage_key")),
    )
    with op.batch_alter_table("ticket_message_attachment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_message_attachment_converted_from_attachment_id"),
            ["converted_from_attachment_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_message_attachment_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_message_attachment_message_id"), ["message_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket_message_attachment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_message_attachment_message_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_attachment_customer_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_attachment_converted_from_attachment_id"))

    op.drop_table("ticket_message_attachment")
