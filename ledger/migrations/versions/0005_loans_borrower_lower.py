"""loans: index lower(borrower), which the loan list's borrower filter compares

`GET /v1/loans?borrower=` matches addresses case-insensitively (`lower(borrower) = :address`), which the plain
index on `borrower` cannot serve: scripts/bench.py measured that filter growing 2.6x from 11k to 1M lots
while the trail stayed flat. Works on PostgreSQL and SQLite (both index expressions).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_loans_borrower_lower", "loans", [sa.text("lower(borrower)")])


def downgrade() -> None:
    op.drop_index("ix_loans_borrower_lower", table_name="loans")
