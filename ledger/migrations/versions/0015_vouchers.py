"""vouchers: supply-chain vouchers mirrored from the SupplyChainVouchers contract (issue 22): credit lines,
vouchers, their parts, financings and settlements, and the raw events' voucher id

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.mirror.models import Uint64

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hex(name: str, length: int = 66, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.String(length=length), nullable=nullable)


def _position() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        _hex("transaction_hash"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(_hex("voucher_id", nullable=True))
    op.create_index("ix_events_voucher", "events", ["voucher_id", "block_number", "log_index"])

    op.create_table(
        "credit_lines",
        _hex("core_org"),
        _hex("bank_org"),
        sa.Column("line_limit", Uint64(), nullable=False),
        sa.Column("outstanding", Uint64(), nullable=False),
        sa.Column("expiry", sa.BigInteger(), nullable=False),
        _hex("terms_hash"),
        *_position(),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("core_org"),
    )
    op.create_index("ix_credit_lines_bank_org", "credit_lines", ["bank_org"])

    op.create_table(
        "vouchers",
        _hex("voucher_id"),
        _hex("core_org"),
        _hex("bank_org"),
        _hex("holder", 42),
        sa.Column("face_value", Uint64(), nullable=False),
        sa.Column("settled", Uint64(), nullable=False),
        sa.Column("maturity", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        _hex("invoice_hash"),
        _hex("head"),
        sa.Column("event_count", sa.Integer(), nullable=False),
        *_position(),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("voucher_id"),
    )
    op.create_index("ix_vouchers_core_org", "vouchers", ["core_org"])
    op.create_index("ix_vouchers_bank_org", "vouchers", ["bank_org"])

    op.create_table(
        "voucher_parts",
        _hex("voucher_id"),
        sa.Column("part_id", sa.BigInteger(), nullable=False),
        sa.Column("parent_part_id", sa.BigInteger(), nullable=True),
        _hex("holder", 42),
        sa.Column("amount", Uint64(), nullable=False),
        sa.Column("remaining", Uint64(), nullable=False),
        sa.Column("state", sa.Integer(), nullable=False),
        _hex("bank_org", nullable=True),
        sa.Column("discount_rate_bps", sa.Integer(), nullable=True),
        sa.Column("settled_amount", Uint64(), nullable=True),
        sa.Column("settled_block", sa.BigInteger(), nullable=True),
        *_position(),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("voucher_id", "part_id"),
    )
    op.create_index("ix_voucher_parts_holder", "voucher_parts", ["holder"])
    op.create_index("ix_voucher_parts_block_number", "voucher_parts", ["block_number"])

    op.create_table(
        "voucher_financings",
        _hex("voucher_id"),
        *_position(),
        sa.Column("part_id", sa.BigInteger(), nullable=False),
        _hex("bank", 42),
        _hex("bank_org"),
        _hex("seller", 42),
        sa.Column("face", Uint64(), nullable=False),
        sa.Column("discount_rate_bps", sa.Integer(), nullable=False),
        sa.Column("discount_days", sa.Integer(), nullable=False),
        sa.Column("interest", Uint64(), nullable=False),
        sa.Column("paid", Uint64(), nullable=False),
        _hex("payment_ref"),
        sa.PrimaryKeyConstraint("voucher_id", "block_number", "log_index"),
    )
    op.create_index("ix_voucher_financings_bank", "voucher_financings", ["bank"])
    op.create_index("ix_voucher_financings_bank_org", "voucher_financings", ["bank_org"])

    op.create_table(
        "voucher_settlements",
        _hex("voucher_id"),
        *_position(),
        sa.Column("part_id", sa.BigInteger(), nullable=False),
        _hex("holder", 42),
        sa.Column("amount", Uint64(), nullable=False),
        _hex("payment_ref"),
        sa.PrimaryKeyConstraint("voucher_id", "block_number", "log_index"),
    )


def downgrade() -> None:
    op.drop_table("voucher_settlements")
    op.drop_table("voucher_financings")
    op.drop_table("voucher_parts")
    op.drop_table("vouchers")
    op.drop_table("credit_lines")
    op.drop_index("ix_events_voucher", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("voucher_id")
