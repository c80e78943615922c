"""Alembic environment: runs on the connection `ledger.store.db.migrate` hands in, or on sqlalchemy.url."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context
from sqlmodel import SQLModel

import ledger.mirror.models  # noqa: F401  (registers the tables on SQLModel.metadata)
import ledger.monitoring.alerts  # noqa: F401  (monitoring: alerts, webhook outbox)
import ledger.monitoring.classification  # noqa: F401  (classification reasons)
import ledger.store.offchain  # noqa: F401  (the API's off-chain tables)
import ledger.store.scores  # noqa: F401  (the behaviour score: models and loan scores)

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = sa.create_engine(str(config.get_main_option("sqlalchemy.url")))
    with engine.begin() as conn:
        _run(conn)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
