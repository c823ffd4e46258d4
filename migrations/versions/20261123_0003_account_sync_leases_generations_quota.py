"""account sync leases generations quota

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:23:33.362748
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows get defaults: generation 1 and an empty coverage report.
    op.create_table(
        "quota_holds",
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.String(length=32), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_quota_holds_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "bucket", name=op.f("pk_quota_holds")),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("units", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["connected_accounts.id"],
            name=op.f("fk_quota_reservations_account_id_connected_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quota_reservations")),
    )
    with op.batch_alter_table("quota_reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_quota_reservations_bucket_at", ["account_id", "bucket", "at"], unique=False
        )

    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sync_generation", sa.Integer(), nullable=False, server_default="1")
        )

    with op.batch_alter_table("connected_accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sync_due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("sync_lease_owner", sa.String(length=128), nullable=True))
        batch_op.add_column(
            sa.Column("sync_lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("coverage", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.create_index(
            batch_op.f("ix_connected_accounts_sync_due_at"), ["sync_due_at"], unique=False
        )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sync_generation", sa.Integer(), nullable=False, server_default="1")
        )

    with op.batch_alter_table("sync_streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("generation", sa.Integer(), nullable=False, server_default="1")
        )
        batch_op.drop_column("lease_owner")
        batch_op.drop_column("lease_expires_at")


def downgrade() -> None:
    with op.batch_alter_table("sync_streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("lease_owner", sa.VARCHAR(length=128), nullable=True))
        batch_op.drop_column("generation")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("sync_generation")

    with op.batch_alter_table("connected_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_connected_accounts_sync_due_at"))
        batch_op.drop_column("coverage")
        batch_op.drop_column("sync_lease_expires_at")
        batch_op.drop_column("sync_lease_owner")
        batch_op.drop_column("sync_due_at")

    with op.batch_alter_table("calendar_events", schema=None) as batch_op:
        batch_op.drop_column("sync_generation")

    with op.batch_alter_table("quota_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_quota_reservations_bucket_at")

    op.drop_table("quota_reservations")
    op.drop_table("quota_holds")
