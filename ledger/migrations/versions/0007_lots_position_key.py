"""lots: keyed by the event that made them; a lot id is found through an 8-byte lookup key

- The primary key becomes (loan_id, block_number, log_index): a loan's lots are one range of the key, in
  chain order (it replaces `ix_lots_loan`), and the indexer's new lots land at the end of their loan's range.
- `lot_key` (the lot id's first 8 bytes as a signed 64-bit integer) gets `ix_lots_key`, which every lookup
  by lot id goes through together with the id itself (`ledger.mirror.models.lots_by_id`).
- Why: lot ids are hashes. Under the old (lot_id, loan_id) key every new lot went to a random page of a
  ~140-byte-per-lot index, so each indexer batch dirtied most of that index and SQLite wrote it all to the
  WAL at commit; at 100,000 lots that was a third of the backfill's database time, and it grew with the
  table. The 8-byte key's index is a sixth of the size.

Revision ID: 0007
Revises: 0006
"""

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.mirror.models import lot_key

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fill_lot_keys() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("UPDATE lots SET lot_key = ('x' || substr(lot_id, 3, 16))::bit(64)::bigint")
        return
    # SQLite has no hex parser: the key comes from the same Python function the indexer uses.
    driver = bind.connection.driver_connection
    assert driver is not None
    driver.create_function("fundflow_lot_key", 1, lot_key, deterministic=True)
    op.execute("UPDATE lots SET lot_key = fundflow_lot_key(lot_id)")


def _rekey(columns: list[str], name: str) -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE lots DROP CONSTRAINT lots_pkey")
        op.create_primary_key("lots_pkey", "lots", columns)
        return
    # SQLite cannot alter a primary key: batch mode copies the table into one declared with the new key.
    # SQLAlchemy warns that the copied columns still say primary_key; the new constraint is what counts.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_lots' specifies columns", sa.exc.SAWarning)
        with op.batch_alter_table("lots", recreate="always") as batch_op:
            batch_op.create_primary_key(name, columns)


def upgrade() -> None:
    op.add_column("lots", sa.Column("lot_key", sa.BigInteger(), nullable=True))
    _fill_lot_keys()
    with op.batch_alter_table("lots") as batch_op:
        batch_op.alter_column("lot_key", existing_type=sa.BigInteger(), nullable=False)
    op.drop_index("ix_lots_loan", table_name="lots")
    _rekey(["loan_id", "block_number", "log_index"], "pk_lots")
    op.create_index("ix_lots_key", "lots", ["lot_key"])


def downgrade() -> None:
    op.drop_index("ix_lots_key", table_name="lots")
    _rekey(["lot_id", "loan_id"], "pk_lots")
    op.create_index("ix_lots_loan", "lots", ["loan_id", "block_number", "log_index"])
    with op.batch_alter_table("lots") as batch_op:
        batch_op.drop_column("lot_key")
