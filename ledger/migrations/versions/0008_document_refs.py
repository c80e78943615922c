"""document_refs: the projection of which event argument names which off-chain document

- One row per event argument that carries a document's hash (`ledger.mirror.models.DocumentRef`), numbered
  as written (`id`, SQLite's rowid) and found by digest through `ix_document_refs_key` on the digest's
  first 8 bytes (`digest_key`) and the digest itself. It replaces a `LIKE '%digest%'` over every event's
  JSON.
- The rows of the events already mirrored are filled in here, from the raw events' arguments, with the
  document arguments of the ABI at this revision (the indexer derives them from the ABI it runs with).

Revision ID: 0008
Revises: 0007
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger.mirror.models import hash_key

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The bytes32 arguments named `...Hash` of each event of the ledger's ABI at this revision.
_DOCUMENT_ARGUMENTS = {
    "OrganizationRegistered": ("profileHash",),
    "LoanOpened": ("termsHash",),
    "Disbursed": ("evidenceHash",),
    "Paid": ("evidenceHash",),
    "LotConfirmed": ("evidenceHash",),
    "LotDisputed": ("reasonHash",),
    "Repaid": ("evidenceHash",),
    "LoanClosed": ("reasonHash",),
    "RiskClassified": ("reasonHash",),
    "CollateralValued": ("evidenceHash",),
    "InspectionRecorded": ("reportHash",),
    "LoanRestructured": ("termsHash",),
    "TrailAttested": ("reportHash",),
}
_CHUNK = 5_000


def _fill(document_refs: sa.Table) -> None:
    bind = op.get_bind()
    events = sa.table(
        "events",
        sa.column("name", sa.String),
        sa.column("loan_id", sa.String),
        sa.column("block_number", sa.BigInteger),
        sa.column("log_index", sa.Integer),
        sa.column("args", sa.Text),
    )
    query = (
        sa.select(events.c.name, events.c.loan_id, events.c.block_number, events.c.log_index, events.c.args)
        .where(events.c.name.in_(sorted(_DOCUMENT_ARGUMENTS)))
        .order_by(events.c.block_number, events.c.log_index)
    )
    rows: list[dict[str, Any]] = []
    for name, loan_id, block_number, log_index, args in bind.execute(query):
        values = json.loads(args) if isinstance(args, str) else args
        for argument in _DOCUMENT_ARGUMENTS[name]:
            digest = values.get(argument)
            if not isinstance(digest, str) or int(digest, 16) == 0:
                continue  # the zero hash names no document
            digest = digest.lower()
            rows.append(
                {
                    "block_number": block_number,
                    "log_index": log_index,
                    "argument": argument,
                    "event": name,
                    "loan_id": loan_id,
                    "digest": digest,
                    "digest_key": hash_key(digest),
                }
            )
        if len(rows) >= _CHUNK:
            bind.execute(sa.insert(document_refs), rows)
            rows = []
    if rows:
        bind.execute(sa.insert(document_refs), rows)


def upgrade() -> None:
    document_refs = op.create_table(
        "document_refs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("digest_key", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=66), nullable=False),
        sa.Column("loan_id", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("argument", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    assert document_refs is not None
    _fill(document_refs)
    op.create_index("ix_document_refs_key", "document_refs", ["digest_key"])


def downgrade() -> None:
    op.drop_index("ix_document_refs_key", table_name="document_refs")
    op.drop_table("document_refs")
