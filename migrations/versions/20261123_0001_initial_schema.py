"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 15:06:31.884473
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "heartbeats",
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("component", name=op.f("pk_heartbeats")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "connected_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "provider",
            sa.Enum("google", "microsoft", name="provider", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("provider_account_id", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "needs_reauth",
                "disabled",
                name="accountstate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("granted_scopes", sa.Text(), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_connected_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connected_accounts")),
        sa.UniqueConstraint(
            "user_id",
            "provider",
            "provider_account_id",
            name=op.f("uq_connected_accounts_user_id_provider_provider_account_id"),
        ),
    )
    op.create_table(
        "contacts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=512), nullable=True),
        sa.Column("company", sa.String(length=256), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("inbound_count", sa.Integer(), nullable=False),
        sa.Column("outbound_count", sa.Integer(), nullable=False),
        sa.Column("first_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_inbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_outbound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("awaiting_reply_from", sa.String(length=8), nullable=True),
        sa.Column("past_meetings", sa.Integer(), nullable=False),
        sa.Column("last_meeting_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_meeting_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("strength", sa.Integer(), nullable=True),
        sa.Column("strength_reasons", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_contacts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("user_id", "address", name=op.f("uq_contacts_user_id_address")),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_user_last_contact", ["user_id", "last_contact_at"], unique=False
        )

    op.create_table(
        "account_addresses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_account_addresses_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_addresses")),
        sa.UniqueConstraint(
            "account_id", "address", name=op.f("uq_account_addresses_account_id_address")
        ),
    )
    op.create_table(
        "calendar_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("provider_calendar_id", sa.String(length=512), nullable=False),
        sa.Column("provider_event_id", sa.String(length=1024), nullable=False),
        sa.Column("ical_uid", sa.String(length=1024), nullable=True),
        sa.Column("recurring_event_id", sa.String(length=1024), nullable=True),
        sa.Column("is_cancelled", sa.Boolean(), nullable=False),
        sa.Column("is_all_day", sa.Boolean(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("organizer_address", sa.String(length=320), nullable=True),
        sa.Column("self_response", sa.String(length=32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_calendar_events_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_events")),
        sa.UniqueConstraint(
            "account_id",
            "provider_calendar_id",
            "provider_event_id",
            name=op.f("uq_calendar_events_account_id_provider_calendar_id_provider_event_id"),
        ),
    )
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_calendar_events_account_start", ["account_id", "start_at"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("provider_message_id", sa.String(length=512), nullable=False),
        sa.Column("provider_thread_id", sa.String(length=512), nullable=True),
        sa.Column("internet_message_id", sa.String(length=998), nullable=True),
        sa.Column("in_reply_to", sa.String(length=998), nullable=True),
        sa.Column("references", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("folder", sa.String(length=256), nullable=True),
        sa.Column("is_sent", sa.Boolean(), nullable=False),
        sa.Column("is_inbox", sa.Boolean(), nullable=False),
        sa.Column("is_excluded", sa.Boolean(), nullable=False),
        sa.Column("list_id", sa.String(length=998), nullable=True),
        sa.Column("has_list_unsubscribe", sa.Boolean(), nullable=False),
        sa.Column("precedence", sa.String(length=64), nullable=True),
        sa.Column("auto_submitted", sa.String(length=64), nullable=True),
        sa.Column("recipient_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_messages_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint(
            "account_id",
            "provider_message_id",
            name=op.f("uq_messages_account_id_provider_message_id"),
        ),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_account_received", ["account_id", "received_at"], unique=False
        )
        batch_op.create_index(
            "ix_messages_internet_message_id", ["internet_message_id"], unique=False
        )

    op.create_table(
        "sync_streams",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("stream", sa.String(length=512), nullable=False),
        sa.Column(
            "phase",
            sa.Enum("initial", "incremental", name="syncphase", native_enum=False, length=32),
            nullable=False,
        ),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("backfill_cursor", sa.Text(), nullable=True),
        sa.Column("items_seen", sa.Integer(), nullable=False),
        sa.Column("items_total_estimate", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("cursor_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_sync_streams_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_streams")),
        sa.UniqueConstraint("account_id", "stream", name=op.f("uq_sync_streams_account_id_stream")),
    )
    with op.batch_alter_table("sync_streams", schema=None) as batch_op:
        batch_op.create_index("ix_sync_streams_due", ["due_at"], unique=False)

    op.create_table(
        "event_attendees",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=512), nullable=True),
        sa.Column("response_status", sa.String(length=32), nullable=True),
        sa.Column("is_organizer", sa.Boolean(), nullable=False),
        sa.Column("is_self", sa.Boolean(), nullable=False),
        sa.Column("is_optional", sa.Boolean(), nullable=False),
        sa.Column("is_resource", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["calendar_events.id"],
            name=op.f("fk_event_attendees_event_id_calendar_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_attendees")),
        sa.UniqueConstraint(
            "event_id", "address", name=op.f("uq_event_attendees_event_id_address")
        ),
    )
    with op.batch_alter_table("event_attendees", schema=None) as batch_op:
        batch_op.create_index("ix_event_attendees_address", ["address"], unique=False)

    op.create_table(
        "message_participants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "role",
            sa.Enum(
                "from",
                "sender",
                "reply_to",
                "to",
                "cc",
                "bcc",
                name="participantrole",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=512), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_participants_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_participants")),
        sa.UniqueConstraint(
            "message_id",
            "role",
            "position",
            name=op.f("uq_message_participants_message_id_role_position"),
        ),
    )
    with op.batch_alter_table("message_participants", schema=None) as batch_op:
        batch_op.create_index("ix_message_participants_address", ["address"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("message_participants", schema=None) as batch_op:
        batch_op.drop_index("ix_message_participants_address")

    op.drop_table("message_participants")
    with op.batch_alter_table("event_attendees", schema=None) as batch_op:
        batch_op.drop_index("ix_event_attendees_address")

    op.drop_table("event_attendees")
    with op.batch_alter_table("sync_streams", schema=None) as batch_op:
        batch_op.drop_index("ix_sync_streams_due")

    op.drop_table("sync_streams")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_internet_message_id")
        batch_op.drop_index("ix_messages_account_received")

    op.drop_table("messages")
    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.drop_index("ix_calendar_events_account_start")

    op.drop_table("calendar_events")
    op.drop_table("account_addresses")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_user_last_contact")

    op.drop_table("contacts")
    op.drop_table("connected_accounts")
    op.drop_table("users")
    op.drop_table("heartbeats")
