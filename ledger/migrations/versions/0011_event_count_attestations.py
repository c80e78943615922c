"""loans.event_count counts every event of the loan, attestations included

Until now `event_count` counted only the hash-chain events, while verification lists every event of the
loan (an attested demo loan: 18 against 19). The projection now counts each `TrailAttested` too; this
adds the mirrored attestations to the rows written before.

Revision ID: 0011
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ATTESTATIONS = "(SELECT COUNT(*) FROM attestations a WHERE a.loan_id = loans.loan_id)"


def upgrade() -> None:
    op.execute(f"UPDATE loans SET event_count = event_count + {_ATTESTATIONS}")


def downgrade() -> None:
    op.execute(f"UPDATE loans SET event_count = event_count - {_ATTESTATIONS}")
