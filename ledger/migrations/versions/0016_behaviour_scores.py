"""behaviour scores: score_models (trained models, their cards and artifacts) and loan_scores (issue 21)

Revision ID: 0016
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "score_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("trained_on", sa.String(length=12), nullable=False),
        sa.Column("snapshot_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot_to", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("artifact_path", sa.String(length=1000), nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "loan_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("loan_id", sa.String(length=66), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("band", sa.String(length=1), nullable=False),
        sa.Column("pd", sa.Float(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["score_models.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("loan_id", "model_id", "as_of", name="uq_loan_scores_loan_model_as_of"),
    )
    op.create_index("ix_loan_scores_loan_as_of", "loan_scores", ["loan_id", "as_of"])
    op.create_index(op.f("ix_loan_scores_model_id"), "loan_scores", ["model_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_loan_scores_model_id"), table_name="loan_scores")
    op.drop_index("ix_loan_scores_loan_as_of", table_name="loan_scores")
    op.drop_table("loan_scores")
    op.drop_table("score_models")
