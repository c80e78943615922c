"""indexer mirror: blocks, events, checkpoint, projections

Revision ID: 0001
Revises:
Create Date: 2026-11-28 13:45:39.510150
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from ledger.mirror.models import Uint64

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "accounts",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("org_id", sa.String(length=66), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_accounts_org_id"), ["org_id"], unique=False)

    op.create_table(
        "attestations",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("auditor_org", sa.String(length=66), nullable=False),
        sa.Column("head", sa.String(length=66), nullable=False),
        sa.Column("report_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attestations_auditor_org"), ["auditor_org"], unique=False)

    op.create_table(
        "blocks",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("parent_hash", sa.String(length=66), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "number"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "checkpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("genesis_hash", sa.String(length=66), nullable=False),
        sa.Column("contract_address", sa.String(length=42), nullable=False),
        sa.Column("abi_hash", sa.String(length=66), nullable=False),
        sa.Column("start_block", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "classifications",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("risk_class", sa.Integer(), nullable=False),
        sa.Column("reason_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    op.create_table(
        "collateral_valuations",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("collateral_id", sa.String(length=66), nullable=False),
        sa.Column("value", Uint64(), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    with op.batch_alter_table("collateral_valuations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_collateral_valuations_collateral_id"), ["collateral_id"], unique=False
        )

    op.create_table(
        "confirmations",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("lot_id", sa.String(length=66), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_confirmations_lot_id"), ["lot_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("block_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("transaction_index", sa.Integer(), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.String(length=66), nullable=True),
        sa.Column(
            "args",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "topics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", "block_hash", "log_index"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_loan", ["loan_id", "block_number", "log_index"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_name"), ["name"], unique=False)
        batch_op.create_index("ix_events_position", ["chain_id", "block_number", "log_index"], unique=False)

    op.create_table(
        "inspections",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("report_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    op.create_table(
        "loans",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("lender_org", sa.String(length=66), nullable=False),
        sa.Column("borrower", sa.String(length=42), nullable=False),
        sa.Column("borrower_ref", sa.String(length=66), nullable=False),
        sa.Column("principal", Uint64(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("allowed_purposes", sa.BigInteger(), nullable=False),
        sa.Column("maturity", sa.BigInteger(), nullable=False),
        sa.Column("terms_hash", sa.String(length=66), nullable=False),
        sa.Column("disbursed", Uint64(), nullable=False),
        sa.Column("repaid", Uint64(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("risk_class", sa.Integer(), nullable=False),
        sa.Column("closing_reason_hash", sa.String(length=66), nullable=True),
        sa.Column("head", sa.String(length=66), nullable=False),
        sa.Column("event_count", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("updated_block", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("loan_id"),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_loans_borrower"), ["borrower"], unique=False)
        batch_op.create_index(batch_op.f("ix_loans_lender_org"), ["lender_org"], unique=False)

    op.create_table(
        "lots",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("lot_id", sa.String(length=66), nullable=False),
        sa.Column("parent_lot_id", sa.String(length=66), nullable=True),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("amount", Uint64(), nullable=False),
        sa.Column("remaining", Uint64(), nullable=False),
        sa.Column("purpose", sa.Integer(), nullable=False),
        sa.Column("declared_use", sa.Boolean(), nullable=False),
        sa.Column("entrusted", sa.Boolean(), nullable=True),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.Column("confirmation", sa.String(length=12), nullable=False),
        sa.Column("confirmation_hash", sa.String(length=66), nullable=True),
        sa.Column("confirmation_block", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "lot_id"),
    )
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lots_holder"), ["holder"], unique=False)
        batch_op.create_index(batch_op.f("ix_lots_parent_lot_id"), ["parent_lot_id"], unique=False)

    op.create_table(
        "organizations",
        sa.Column("org_id", sa.String(length=66), nullable=False),
        sa.Column("profile_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("org_id"),
    )
    op.create_table(
        "repayments",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("amount", Uint64(), nullable=False),
        sa.Column("outstanding", Uint64(), nullable=False),
        sa.Column("evidence_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    op.create_table(
        "restructurings",
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.Column("maturity", sa.BigInteger(), nullable=False),
        sa.Column("terms_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("loan_id", "block_number", "log_index"),
    )
    op.create_table(
        "role_grants",
        sa.Column("role", sa.String(length=66), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("role_name", sa.String(length=32), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("transaction_hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("role", "account"),
    )


def downgrade() -> None:

    op.drop_table("role_grants")
    op.drop_table("restructurings")
    op.drop_table("repayments")
    op.drop_table("organizations")
    with op.batch_alter_table("lots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lots_parent_lot_id"))
        batch_op.drop_index(batch_op.f("ix_lots_holder"))

    op.drop_table("lots")
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_loans_lender_org"))
        batch_op.drop_index(batch_op.f("ix_loans_borrower"))

    op.drop_table("loans")
    op.drop_table("inspections")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_position")
        batch_op.drop_index(batch_op.f("ix_events_name"))
        batch_op.drop_index("ix_events_loan")

    op.drop_table("events")
    with op.batch_alter_table("confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_confirmations_lot_id"))

    op.drop_table("confirmations")
    with op.batch_alter_table("collateral_valuations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collateral_valuations_collateral_id"))

    op.drop_table("collateral_valuations")
    op.drop_table("classifications")
    op.drop_table("checkpoint")
    op.drop_table("blocks")
    with op.batch_alter_table("attestations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attestations_auditor_org"))

    op.drop_table("attestations")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_accounts_org_id"))

    op.drop_table("accounts")
