"""file_records: the post-loan file's on-chain records (RecordFiled: guarantees given and released);
file_contents: their off-chain canonical JSON, keyed by its keccak256 (the on-chain contentHash)

Revision ID: 0013
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The document arguments of the events this revision adds (0008's `_DOCUMENT_ARGUMENTS` names the older
# ones). RecordFiled is new, so no mirrored row needs its refs filled in: the projection writes them.
_DOCUMENT_ARGUMENTS = {"RecordFiled": ("contentHash",)}


def upgrade() -> None:
    op.create_table(
        "file_records",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("record_kind", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=66), nullable=False),
        sa.Column("content_hash", sa.String(length=66), nullable=False),
        sa.Column("actor", sa.String(length=42), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    with op.batch_alter_table("file_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_file_records_record_id"), ["record_id"], unique=False)
    op.create_table(
        "file_contents",
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("schema_name", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=42), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )


def downgrade() -> None:
    op.drop_table("file_contents")
    with op.batch_alter_table("file_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_file_records_record_id"))
    op.drop_table("file_records")
