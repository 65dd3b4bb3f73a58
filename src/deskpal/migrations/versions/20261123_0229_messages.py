"""messages: every TicketMessage field, message topic links, send state; ticket priority and type

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 02:29:16.774962
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import deskpal.core.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A batch copy of ticket_message on SQLite drops its triggers, among them the three that feed the
# full-text table (created by 0002): recreated here, frozen as they were there.
_SQLITE_FTS_TRIGGERS = (
    "CREATE TRIGGER ticket_message_fts_ai AFTER INSERT ON ticket_message BEGIN INSERT INTO ticket_message_fts(rowid, subject, text_body) VALUES (new.message_id, new.subject, new.text_body); END",
    "CREATE TRIGGER ticket_message_fts_ad AFTER DELETE ON ticket_message BEGIN INSERT INTO ticket_message_fts(ticket_message_fts, rowid, subject, text_body) VALUES ('delete', old.message_id, old.subject, old.text_body); END",
    "CREATE TRIGGER ticket_message_fts_au AFTER UPDATE OF subject, text_body ON ticket_message BEGIN INSERT INTO ticket_message_fts(ticket_message_fts, rowid, subject, text_body) VALUES ('delete', old.message_id, old.subject, old.text_body); INSERT INTO ticket_message_fts(rowid, subject, text_body) VALUES (new.message_id, new.subject, new.text_body); END",
)


def _restore_search_triggers() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's generated search column survives ALTER TABLE
    for name in ("ai", "ad", "au"):
        op.execute(f"DROP TRIGGER IF EXISTS ticket_message_fts_{name}")
    for statement in _SQLITE_FTS_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("ticket_type", sa.String(length=20), nullable=True))

    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("updated_at", deskpal.core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "created_by_rep_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("channel_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.add_column(sa.Column("channel_type", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("is_forward", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("headers", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("is_opened", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("is_bounced", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("last_open_date", deskpal.core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("message_identifier", sa.String(length=998), nullable=True))
        batch_op.add_column(
            sa.Column("send_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("send_requested_at", deskpal.core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sent_at", deskpal.core.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("ai_spam_status", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("ai_topics_status", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("ai_reply_status", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("ai_generated_response", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ai_modified_response", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ai_prompt", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("is_escalated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("page_screenshot", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("page_url", sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column("additional_info", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "email_template_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "reply_to_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column(
                "forward_from_message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.add_column(sa.Column("attachment_refs", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index(batch_op.f("ix_ticket_message_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_ticket_message_created_by_rep_id"), ["created_by_rep_id"], unique=False
        )
        batch_op.create_index(
            "ix_ticket_message_customer_id_send_pending", ["customer_id", "send_pending"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_message_reply_to_message_id"), ["reply_to_message_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_message_channel_id_channel"),
            "channel",
            ["channel_id"],
            ["channel_id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_message_created_by_rep_id_customer_rep"),
            "customer_rep",
            ["created_by_rep_id"],
            ["customer_rep_id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_message_reply_to_message_id_ticket_message"),
            "ticket_message",
            ["reply_to_message_id"],
            ["message_id"],
            ondelete="SET NULL",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ticket_message_forward_from_message_id_ticket_message"),
            "ticket_message",
            ["forward_from_message_id"],
            ["message_id"],
            ondelete="SET NULL",
        )

    # The defaults only filled the existing rows; the models set these columns themselves.
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.alter_column("is_forward", server_default=None)
        batch_op.alter_column("is_opened", server_default=None)
        batch_op.alter_column("is_bounced", server_default=None)
        batch_op.alter_column("send_pending", server_default=None)
        batch_op.alter_column("is_escalated", server_default=None)
        batch_op.alter_column("attachment_refs", server_default=None)

    op.create_table(
        "ticket_message_topic",
        sa.Column(
            "ticket_message_topic_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", deskpal.core.db.UTCDateTime(), nullable=False),
        sa.Column("corrected", sa.Boolean(), nullable=False),
        sa.Column("correction_date", deskpal.core.db.UTCDateTime(), nullable=True),
        sa.Column(
            "corrected_by_customer_rep_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("corrected_by_customer_rep_name", sa.String(length=200), nullable=True),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["corrected_by_customer_rep_id"],
            ["customer_rep.customer_rep_id"],
            name=op.f("fk_ticket_message_topic_corrected_by_customer_rep_id_customer_rep"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.customer_id"],
            name=op.f("fk_ticket_message_topic_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["ticket_message.message_id"],
            name=op.f("fk_ticket_message_topic_message_id_ticket_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["topic_id"],
            ["topic.topic_id"],
            name=op.f("fk_ticket_message_topic_topic_id_topic"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("ticket_message_topic_id", name=op.f("pk_ticket_message_topic")),
        sa.UniqueConstraint(
            "message_id", "topic_id", name=op.f("uq_ticket_message_topic_message_id_topic_id")
        ),
    )
    with op.batch_alter_table("ticket_message_topic", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_message_topic_corrected_by_customer_rep_id"),
            ["corrected_by_customer_rep_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_ticket_message_topic_customer_id"), ["customer_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_ticket_message_topic_topic_id"), ["topic_id"], unique=False)

    _restore_search_triggers()


def downgrade() -> None:
    with op.batch_alter_table("ticket_message", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ticket_message_forward_from_message_id_ticket_message"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_ticket_message_reply_to_message_id_ticket_message"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_ticket_message_created_by_rep_id_customer_rep"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_ticket_message_channel_id_channel"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_ticket_message_reply_to_message_id"))
        batch_op.drop_index("ix_ticket_message_customer_id_send_pending")
        batch_op.drop_index(batch_op.f("ix_ticket_message_created_by_rep_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_channel_id"))
        batch_op.drop_column("attachment_refs")
        batch_op.drop_column("forward_from_message_id")
        batch_op.drop_column("reply_to_message_id")
        batch_op.drop_column("email_template_id")
        batch_op.drop_column("additional_info")
        batch_op.drop_column("page_url")
        batch_op.drop_column("page_screenshot")
        batch_op.drop_column("is_escalated")
        batch_op.drop_column("ai_prompt")
        batch_op.drop_column("ai_modified_response")
        batch_op.drop_column("ai_generated_response")
        batch_op.drop_column("ai_reply_status")
        batch_op.drop_column("ai_topics_status")
        batch_op.drop_column("ai_spam_status")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("send_requested_at")
        batch_op.drop_column("send_pending")
        batch_op.drop_column("message_identifier")
        batch_op.drop_column("last_open_date")
        batch_op.drop_column("is_bounced")
        batch_op.drop_column("is_opened")
        batch_op.drop_column("headers")
        batch_op.drop_column("is_forward")
        batch_op.drop_column("channel_type")
        batch_op.drop_column("channel_id")
        batch_op.drop_column("created_by_rep_id")
        batch_op.drop_column("updated_at")

    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("ticket_type")
        batch_op.drop_column("priority")

    with op.batch_alter_table("ticket_message_topic", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_message_topic_topic_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_topic_customer_id"))
        batch_op.drop_index(batch_op.f("ix_ticket_message_topic_corrected_by_customer_rep_id"))

    op.drop_table("ticket_message_topic")
    _restore_search_triggers()
