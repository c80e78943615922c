"""document_uploads, document_attachments, loan_openings; loan numbers unique per lender

- `document_uploads`: every organisation that uploaded a document (it may read it back). Filled from
  `documents.uploaded_by` through the mirror's `accounts` (an uploader whose account the mirror does not know
  keeps access through `documents.uploaded_by`).
- `document_attachments`: the records (events of the uploader's own writes) a document was attached to; who
  sees such a record may read the document. Nothing can be filled in for documents uploaded before: which
  event an uploader wrote is not in the mirror, so until re-attached they are readable by their uploaders.
- `loan_openings`: an opening in flight (its salted loan id written before the send).
- `loan_metadata.lender_org` (filled from the mirrored loan, else the creating account's organisation) and the
  loan number unique per lender instead of globally.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _unique_on(table: str, columns: list[str]) -> str | None:
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints(table):
        if list(constraint["column_names"]) == columns:
            return constraint["name"] or f"uq_{table}_{'_'.join(columns)}"
    return None


def upgrade() -> None:
    op.create_table(
        "document_uploads",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("org_id", sa.String(length=66), nullable=False),
        sa.Column("uploaded_by", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", "org_id"),
    )
    op.create_table(
        "document_attachments",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.String(length=66), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.String(length=66), nullable=True),
        sa.Column("lot_id", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash", "transaction_hash", "log_index"),
    )
    op.create_table(
        "loan_openings",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("lender_org", sa.String(length=66), nullable=False),
        sa.Column("loan_number", sa.String(length=64), nullable=False),
        sa.Column("salt", sa.String(length=66), nullable=False),
        sa.Column("borrower_salt", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=42), nullable=False),
        sa.Column("request_key", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("loan_id"),
        sa.UniqueConstraint("lender_org", "loan_number", name="uq_loan_openings_lender_number"),
        sa.UniqueConstraint("created_by", "request_key", name="uq_loan_openings_request"),
    )
    op.execute(
        "INSERT INTO document_uploads (hash, org_id, uploaded_by, created_at) "
        "SELECT d.hash, a.org_id, d.uploaded_by, d.created_at FROM documents d "
        "JOIN accounts a ON lower(a.address) = lower(d.uploaded_by)"
    )
    old_unique = _unique_on("loan_metadata", ["loan_number"])
    with op.batch_alter_table(
        "loan_metadata", naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}
    ) as batch:
        batch.add_column(sa.Column("lender_org", sa.String(length=66), nullable=True))
        if old_unique is not None:
            batch.drop_constraint(old_unique, type_="unique")
    op.execute(
        "UPDATE loan_metadata SET lender_org = COALESCE("
        "(SELECT l.lender_org FROM loans l WHERE l.loan_id = loan_metadata.loan_id), "
        "(SELECT a.org_id FROM accounts a WHERE lower(a.address) = lower(loan_metadata.created_by)))"
    )
    with op.batch_alter_table("loan_metadata") as batch:
        batch.create_unique_constraint("uq_loan_metadata_lender_number", ["lender_org", "loan_number"])


def downgrade() -> None:
    with op.batch_alter_table("loan_metadata") as batch:
        batch.drop_constraint("uq_loan_metadata_lender_number", type_="unique")
        batch.drop_column("lender_org")
        batch.create_unique_constraint("loan_metadata_loan_number_key", ["loan_number"])
    op.drop_table("loan_openings")
    op.drop_table("document_attachments")
    op.drop_table("document_uploads")
