"""loan servicing (issue 18): repayment split, change-of-terms facts, classification proposals

- `repayments.interest`, `repayments.penalty`: the parts of a `RepaymentApplied` applied to interest and
  penalty interest (`amount` stays the part applied to principal; 0 for the principal-only `Repaid`).
- `restructurings.change_kind`, `restructurings.financial_difficulty`: what a `TermsChanged` changed and
  whether the debtor was in financial difficulty (NULL for a `LoanRestructured`, which said neither);
  `previous_maturity`, `outstanding`: the maturity before the change and the principal outstanding at it (days
  past due are never reset by a change of terms): `TermsChanged` carries both; for a `LoanRestructured` the
  projection takes them from the loan's state before it. NULL for rows mirrored before this revision.
- `classification_proposals`: maker-checker; a class change proposed with a written reason by one lender
  account, sent on chain when a second account of the same bank approves it.

Revision ID: 0012
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.mirror.models import Uint64

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repayments") as batch:
        batch.add_column(sa.Column("interest", Uint64(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("penalty", Uint64(), nullable=False, server_default="0"))
    with op.batch_alter_table("restructurings") as batch:
        batch.add_column(sa.Column("change_kind", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("financial_difficulty", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("previous_maturity", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("outstanding", Uint64(), nullable=True))
    op.create_table(
        "classification_proposals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("loan_id", sa.String(length=66), nullable=False, index=True),
        sa.Column("lender_org", sa.String(length=66), nullable=False, index=True),
        sa.Column("risk_class", sa.Integer(), nullable=False),
        sa.Column("suggested_class", sa.Integer(), nullable=False),
        sa.Column("floor_class", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("capacity_assessed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("proposed_by", sa.String(length=42), nullable=False),
        sa.Column("proposed_by_name", sa.String(length=200), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=42), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason_hash", sa.String(length=66), nullable=True),
        sa.Column("transaction_hash", sa.String(length=66), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("classification_proposals")
    with op.batch_alter_table("restructurings") as batch:
        batch.drop_column("outstanding")
        batch.drop_column("previous_maturity")
        batch.drop_column("financial_difficulty")
        batch.drop_column("change_kind")
    with op.batch_alter_table("repayments") as batch:
        batch.drop_column("penalty")
        batch.drop_column("interest")
