"""indexer write path: lots keyed lot-first, no unused indexes, raw JSON stored as json on PostgreSQL

- `lots`: the primary key becomes (lot_id, loan_id). A lot is looked up by its id alone (GET /v1/lots/{id},
  the access check, and the indexer loading each batch's parent lots), which the old (loan_id, lot_id) key
  could not serve: every such lookup scanned the table, so a backfill slowed with every lot it had written.
  A loan's lots, listed in chain order, get `ix_lots_loan` (loan_id, block_number, log_index).
- `ix_lots_parent_lot_id` and `ix_events_position` go: no query uses them (a reorg undo finds orphaned
  events through their block hashes, the primary key's prefix), and every event paid for them.
- PostgreSQL: `events.args` and `events.topics` become `json` instead of `jsonb`. Nothing queries inside
  them; parsing them into jsonb was about a fifth of the server's work per event.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _lots_key(columns: list[str]) -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE lots DROP CONSTRAINT lots_pkey")
        op.create_primary_key("lots_pkey", "lots", columns)
        return
    # SQLite cannot alter a primary key: batch mode copies the table into one declared with the new key.
    with op.batch_alter_table("lots", recreate="always") as batch_op:
        batch_op.create_primary_key("pk_lots", columns)


def upgrade() -> None:
    op.drop_index("ix_events_position", table_name="events")
    op.drop_index("ix_lots_parent_lot_id", table_name="lots")
    _lots_key(["lot_id", "loan_id"])
    op.create_index("ix_lots_loan", "lots", ["loan_id", "block_number", "log_index"])
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN args TYPE json USING args::json")
        op.execute("ALTER TABLE events ALTER COLUMN topics TYPE json USING topics::json")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN args TYPE jsonb USING args::jsonb")
        op.execute("ALTER TABLE events ALTER COLUMN topics TYPE jsonb USING topics::jsonb")
    op.drop_index("ix_lots_loan", table_name="lots")
    _lots_key(["loan_id", "lot_id"])
    op.create_index("ix_lots_parent_lot_id", "lots", ["parent_lot_id"])
    op.create_index("ix_events_position", "events", ["chain_id", "block_number", "log_index"])
