"""undo_images: the before-images a reorg undo restores; document_refs indexed by block

- `undo_images` (`ledger.mirror.models.UndoImage`): for each of the newest blocks (up to the indexer's
  `max_reorg_depth`), the projection rows its events changed in place, as they were before. A reorg undo
  puts those back and deletes the rows the orphaned blocks appended, instead of rebuilding every touched loan
  from all its events (issue 24). Empty after the upgrade: the first undo deeper than the blocks indexed
  since falls back to the rebuild.
- `ix_document_refs_block`: the undo deletes the orphaned blocks' document references by block.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "undo_images",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.JSON(), nullable=False),
        sa.Column("image", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_undo_images_block", "undo_images", ["block_number"])
    op.create_index("ix_document_refs_block", "document_refs", ["block_number"])


def downgrade() -> None:
    op.drop_index("ix_document_refs_block", table_name="document_refs")
    op.drop_index("ix_undo_images_block", table_name="undo_images")
    op.drop_table("undo_images")
