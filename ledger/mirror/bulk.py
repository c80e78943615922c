"""Bulk writes for the indexer: many rows straight to the database driver, inside the caller's transaction.

SQLAlchemy's `conn.execute(insert(table), rows)` rebuilds and re-processes every row's parameters in Python,
which cost the indexer more than the database's own work did. Here each column's bind processor (the same
one SQLAlchemy would use: exact amounts, JSON) is looked up once, rows become tuples, and the driver takes
them in one call: `executemany` on SQLite, `COPY ... FROM STDIN` on PostgreSQL (several times faster than
INSERTs there). Both run on the connection of the caller's transaction, so the rows commit or roll back
with the rest of the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Dialect

from ledger.mirror.models import Uint64

__all__ = ["insert_rows", "insert_values", "update_rows"]

_Processor = Callable[[Any], Any] | None


def _processors(conn: sa.Connection, table: sa.Table, columns: Sequence[str]) -> tuple[_Processor, ...]:
    return _processors_for(conn.dialect, table, tuple(columns))


@lru_cache(maxsize=256)
def _processors_for(dialect: Dialect, table: sa.Table, columns: tuple[str, ...]) -> tuple[_Processor, ...]:
    """Looked up once per table and column list: adapting a type to the dialect copies it each time, which
    cost more than a batch's inserts into a small table."""
    out: list[_Processor] = []
    for name in columns:
        column_type = table.c[name].type
        if isinstance(column_type, Uint64):  # the hottest columns: the type's own rule, without the layers
            out.append(Uint64.storage(dialect))
        else:
            out.append(column_type.dialect_impl(dialect).bind_processor(dialect))
    return tuple(out)


def _driver(conn: sa.Connection) -> Any:
    """The DBAPI connection under `conn` (sqlite3 or psycopg), in the same transaction."""
    driver = conn.connection.driver_connection
    if driver is None:
        raise RuntimeError("the connection is closed")
    return driver


def _tuples(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str], processors: Sequence[_Processor]
) -> list[Sequence[Any]]:
    build = _row_builder(tuple(columns), tuple(processors))
    return [build(row) for row in rows]


@lru_cache(maxsize=256)
def _row_builder(
    columns: tuple[str, ...], processors: tuple[_Processor, ...]
) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function from a row mapping to its driver-ready tuple, generated once per column list (as the event
    decoders are): the generic loop over columns and processors cost the indexer more per lot row than
    SQLite's insert of it. Column names come from the table's metadata, never from input."""
    namespace: dict[str, Any] = {}
    parts = []
    for i, (column, process) in enumerate(zip(columns, processors, strict=True)):
        if process is None:
            parts.append(f"row[{column!r}]")
        else:
            namespace[f"p{i}"] = process
            parts.append(f"(None if (v{i} := row[{column!r}]) is None else p{i}(v{i}))")
    exec(f"def build(row):\n    return ({', '.join(parts)},)\n", namespace)
    build: Callable[[Mapping[str, Any]], tuple[Any, ...]] = namespace["build"]
    return build


def insert_rows(
    conn: sa.Connection,
    table: sa.Table,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
) -> None:
    """INSERT `rows` (mappings holding at least `columns`, default: the first row's keys) into `table`."""
    if not rows:
        return
    names = list(columns if columns is not None else rows[0].keys())
    insert_values(conn, table, names, _tuples(rows, names, _processors(conn, table, names)))


def insert_values(
    conn: sa.Connection, table: sa.Table, names: Sequence[str], values: Sequence[Sequence[Any]]
) -> None:
    """INSERT rows given as tuples of driver-ready values (JSON already text, amounts already in the
    column's storage form) for the columns `names`: the indexer's path for its biggest table."""
    if not values:
        return
    quote = conn.dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(n) for n in names)})"
    driver = _driver(conn)
    if conn.dialect.name == "postgresql":
        # The queued writer sends to the server from a thread, so the server parses while rows are formatted.
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {target} FROM STDIN", writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            for row in values:
                copy.write_row(row)
        return
    cursor = driver.cursor()
    try:
        cursor.executemany(f"INSERT INTO {target} VALUES ({', '.join('?' * len(names))})", values)
    finally:
        cursor.close()


def update_rows(
    conn: sa.Connection,
    table: sa.Table,
    keys: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """UPDATE `table` SET `columns` WHERE `keys` match, one statement per row in one driver call."""
    if not rows:
        return
    names = [*columns, *keys]
    values = _tuples(rows, names, _processors(conn, table, names))
    quote = conn.dialect.identifier_preparer.quote
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    statement = (
        f"UPDATE {quote(table.name)} SET {', '.join(f'{quote(c)} = {mark}' for c in columns)} "
        f"WHERE {' AND '.join(f'{quote(k)} = {mark}' for k in keys)}"
    )
    driver = _driver(conn)
    cursor = driver.cursor()
    try:
        cursor.executemany(statement, values)
    finally:
        cursor.close()
