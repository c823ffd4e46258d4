"""contact derivation fields

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 15:30:52.657110
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing contacts get zero counts; a `warmline derive --rebuild` fills the rest.
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_key", sa.String(length=320), nullable=True))
        batch_op.add_column(
            sa.Column("threads_together", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("my_reply_median_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("their_reply_median_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cadence_days", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("one_to_one_meetings", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("group_meetings", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_contacts_user_person_key", ["user_id", "person_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_user_person_key")
        batch_op.drop_column("group_meetings")
        batch_op.drop_column("one_to_one_meetings")
        batch_op.drop_column("cadence_days")
        batch_op.drop_column("their_reply_median_s")
        batch_op.drop_column("my_reply_median_s")
        batch_op.drop_column("threads_together")
        batch_op.drop_column("person_key")
