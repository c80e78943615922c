"""terms_versions: every terms document of a loan, by (loan id, terms hash), copied from loan_metadata

Until now `loan_metadata` kept only a loan's current terms; a change of terms overwrote the older document.
This table keeps each version; the existing current documents are copied into it.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terms_versions",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("terms_hash", sa.String(length=66), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "terms_hash"),
    )
    op.execute(
        "INSERT INTO terms_versions (loan_id, terms_hash, terms, stored_at) "
        "SELECT loan_id, terms_hash, terms, updated_at FROM loan_metadata"
    )


def downgrade() -> None:
    op.drop_table("terms_versions")
