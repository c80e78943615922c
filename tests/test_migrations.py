"""Schema migrations on SQLite and PostgreSQL: 0006 re-keys `lots` lot-first and 0007 by chain position with
a lot-id lookup key, each without losing a row, serving a lookup by lot id from an index, and going back
down cleanly; 0009 makes loan numbers unique per lender and records each document's uploading organisation."""

from __future__ import annotations

import json
import warnings
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from ledger.mirror.models import Lot, lot_key, lots_by_id
from ledger.store.db import MIGRATIONS_DIR, create_db_engine, migrate

_LOT = {
    "loan_id": "0x" + "11" * 32,
    "lot_id": "0x" + "22" * 32,
    "parent_lot_id": None,
    "holder": "0x" + "33" * 20,
    "amount": 500,
    "remaining": 200,
    "purpose": 1,
    "declared_use": True,
    "entrusted": False,
    "evidence_hash": "0x" + "44" * 32,
    "confirmation": "unconfirmed",
    "block_number": 7,
    "log_index": 3,
    "transaction_hash": "0x" + "55" * 32,
}
_EVENT = {
    "chain_id": 31337,
    "block_hash": "0x" + "66" * 32,
    "log_index": 3,
    "block_number": 7,
    "transaction_hash": "0x" + "55" * 32,
    "transaction_index": 0,
    "address": "0x" + "77" * 20,
    "name": "Paid",
    "loan_id": "0x" + "11" * 32,
    "args": '{"amount":"500","loanId":"0x' + "11" * 32 + '"}',
    "topics": '["0x' + "88" * 32 + '"]',
    "data": "0x",
}


def _downgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def _insert(engine: sa.Engine, table: str, row: dict[str, Any]) -> None:
    amounts = {"amount", "remaining"}
    sqlite = engine.dialect.name == "sqlite"
    values = {k: (f"{v:020d}" if sqlite and k in amounts else v) for k, v in row.items()}
    columns = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), values)


def _lots_key(engine: sa.Engine) -> list[str]:
    return list(sa.inspect(engine).get_pk_constraint("lots")["constrained_columns"])


def _indexes(engine: sa.Engine, table: str) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(engine).get_indexes(table)}


def test_the_migrated_schema_is_the_models_schema(db_url: str) -> None:
    """Alembic's autogenerate finds nothing to change between the migrations' schema and the SQLModel
    tables: no key, index, column or type is declared in one place and missing from the other."""
    import ledger.store.offchain  # noqa: F401  (registers its tables)
    import ledger.store.scores  # noqa: F401  (registers its tables)

    engine = create_db_engine(db_url)
    try:
        migrate(engine)
        with warnings.catch_warnings(), engine.connect() as conn:
            # SQLite's reflection skips expression indexes (and says so); they are compared on PostgreSQL.
            warnings.filterwarnings("ignore", "Skipped unsupported reflection", sa.exc.SAWarning)
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    # Migration 0005's index on lower(borrower) is declared only there: SQLModel fields cannot declare an
    # expression index.
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name == "ix_loans_borrower_lower")]
    assert diff == []


def test_0006_rekeys_lots_lot_first_keeping_every_row_and_downgrades(db_url: str) -> None:
    engine = create_db_engine(db_url)
    try:
        migrate(engine, "0005")
        _insert(engine, "lots", _LOT)
        _insert(engine, "events", _EVENT)
        assert _lots_key(engine) == ["loan_id", "lot_id"]

        migrate(engine, "0006")
        assert _lots_key(engine) == ["lot_id", "loan_id"]
        assert "ix_lots_loan" in _indexes(engine, "lots")
        assert "ix_lots_parent_lot_id" not in _indexes(engine, "lots")
        assert "ix_events_position" not in _indexes(engine, "events")
        with engine.connect() as conn:
            lot = conn.execute(sa.text("SELECT * FROM lots")).mappings().one()
            assert {k: lot[k] for k in ("loan_id", "lot_id", "holder", "block_number")} == {
                k: _LOT[k] for k in ("loan_id", "lot_id", "holder", "block_number")
            }
            assert int(lot["remaining"]) == 200
            event = conn.execute(sa.text("SELECT args, topics FROM events")).one()
            args = event.args if isinstance(event.args, dict) else json.loads(event.args)
            assert args["amount"] == "500"
            if engine.dialect.name == "sqlite":
                plan = conn.execute(
                    sa.text("EXPLAIN QUERY PLAN SELECT * FROM lots WHERE lot_id = :l"), {"l": _LOT["lot_id"]}
                ).all()
                assert "USING INDEX" in plan[0][-1], plan  # not "SCAN lots"
            else:
                types = dict(
                    conn.execute(
                        sa.text(
                            "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = 'events' AND column_name IN ('args', 'topics')"
                        )
                    ).all()
                )
                assert types == {"args": "json", "topics": "json"}

        _downgrade(engine, "0005")
        assert _lots_key(engine) == ["loan_id", "lot_id"]
        assert {"ix_lots_parent_lot_id"} <= _indexes(engine, "lots")
        assert "ix_events_position" in _indexes(engine, "events")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM lots")).scalar_one() == 1
            assert conn.execute(sa.text("SELECT COUNT(*) FROM events")).scalar_one() == 1
        migrate(engine, "0006")
        assert _lots_key(engine) == ["lot_id", "loan_id"]
    finally:
        engine.dispose()


def test_0007_keys_lots_by_position_with_a_lot_key_and_downgrades(db_url: str) -> None:
    # One id whose first byte is >= 0x80: its key is negative (a signed 64-bit integer on both databases).
    lots = [_LOT, {**_LOT, "lot_id": "0x" + "f1" * 32, "log_index": 4, "parent_lot_id": _LOT["lot_id"]}]
    engine = create_db_engine(db_url)
    try:
        migrate(engine, "0006")
        for lot in lots:
            _insert(engine, "lots", lot)

        migrate(engine, "0007")
        assert _lots_key(engine) == ["loan_id", "block_number", "log_index"]
        assert "ix_lots_key" in _indexes(engine, "lots")
        assert "ix_lots_loan" not in _indexes(engine, "lots")
        table = Lot.__table__  # type: ignore[attr-defined]
        with engine.connect() as conn:
            keys = dict(conn.execute(sa.text("SELECT lot_id, lot_key FROM lots")).all())
            assert keys == {lot["lot_id"]: lot_key(lot["lot_id"]) for lot in lots}
            assert keys["0x" + "f1" * 32] < 0 < keys[_LOT["lot_id"]]
            for lot in lots:
                found = conn.execute(sa.select(table).where(lots_by_id(table, [lot["lot_id"]]))).one()
                assert (found.lot_id, found.log_index) == (lot["lot_id"], lot["log_index"])
                assert int(found.remaining) == 200
            both = conn.execute(sa.select(table.c.lot_id).where(lots_by_id(table, keys))).scalars().all()
            assert sorted(both) == sorted(keys)
            # Same key, other id: the id decides (keys may collide).
            twin = "0x" + "22" * 8 + "00" * 24
            assert lot_key(twin) == lot_key(_LOT["lot_id"])
            assert conn.execute(sa.select(table).where(lots_by_id(table, [twin]))).first() is None
            if engine.dialect.name == "sqlite":
                plan = conn.execute(
                    sa.text("EXPLAIN QUERY PLAN SELECT * FROM lots WHERE lot_key = :k AND lot_id = :l"),
                    {"k": lot_key(_LOT["lot_id"]), "l": _LOT["lot_id"]},
                ).all()
                assert "ix_lots_key" in plan[0][-1], plan

        _downgrade(engine, "0006")
        assert _lots_key(engine) == ["lot_id", "loan_id"]
        assert "ix_lots_loan" in _indexes(engine, "lots")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM lots")).scalar_one() == 2
        migrate(engine)
        assert _lots_key(engine) == ["loan_id", "block_number", "log_index"]
    finally:
        engine.dispose()


def test_0009_makes_loan_numbers_unique_per_lender_and_records_who_uploaded_each_document(
    db_url: str,
) -> None:
    org_a, org_b, account = "0x" + "a1" * 32, "0x" + "b2" * 32, "0x" + "c3" * 20
    when = "2026-01-02 03:04:05+00:00"
    meta = {"terms": "{}", "terms_hash": "0x" + "00" * 32, "created_at": when, "updated_at": when}
    engine = create_db_engine(db_url)
    try:
        migrate(engine, "0008")
        _insert(
            engine,
            "accounts",
            {"address": account, "org_id": org_a, "active": True}
            | {"block_number": 1, "log_index": 0, "transaction_hash": "0x" + "55" * 32},
        )
        # Written by an account in checksum case: the accounts table keeps addresses lower case.
        upper = "0x" + "C3" * 20
        _insert(
            engine,
            "documents",
            {"hash": "0x" + "d4" * 32, "size": 3, "media_type": "text/plain", "filename": None}
            | {"uploaded_by": upper, "created_at": when},
        )
        _insert(
            engine,
            "loan_metadata",
            {"loan_id": "0x" + "11" * 32, "loan_number": "LN-2026-0001", "created_by": upper} | meta,
        )

        migrate(engine, "0009")
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT lender_org FROM loan_metadata")).scalar_one() == org_a
            uploads = conn.execute(sa.text("SELECT hash, org_id FROM document_uploads")).all()
            assert [tuple(u) for u in uploads] == [("0x" + "d4" * 32, org_a)]
        # Another bank may now have the same number; the same bank may not.
        other = {"loan_number": "LN-2026-0001", "created_by": account} | meta
        _insert(engine, "loan_metadata", {"loan_id": "0x" + "22" * 32, "lender_org": org_b} | other)
        try:
            _insert(engine, "loan_metadata", {"loan_id": "0x" + "33" * 32, "lender_org": org_a} | other)
        except sa.exc.IntegrityError:
            pass
        else:
            raise AssertionError("a lender's loan number was accepted twice")

        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM loan_metadata WHERE lender_org = :b"), {"b": org_b})
        _downgrade(engine, "0008")
        assert "document_uploads" not in sa.inspect(engine).get_table_names()
        assert "lender_org" not in {c["name"] for c in sa.inspect(engine).get_columns("loan_metadata")}
        migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT lender_org FROM loan_metadata")).scalar_one() == org_a
    finally:
        engine.dispose()


def test_0017_copies_each_loans_current_terms_into_terms_versions_and_downgrades(db_url: str) -> None:
    terms = {"repayment_schedule": [{"due": "2027-06-30", "amount": 100000}], "counterparties": []}
    digest = "0x" + __import__("eth_utils").keccak(text=json.dumps(terms)).hex()
    when = "2026-01-02 03:04:05+00:00"
    engine = create_db_engine(db_url)
    try:
        migrate(engine, "0016")
        for n, loan in enumerate(("0x" + "11" * 32, "0x" + "22" * 32)):
            _insert(
                engine,
                "loan_metadata",
                {"loan_id": loan, "loan_number": f"LN-2026-000{n + 1}", "lender_org": "0x" + "a1" * 32}
                | {"terms": json.dumps(terms), "terms_hash": digest, "created_by": "0x" + "c3" * 20}
                | {"created_at": when, "updated_at": when},
            )
        migrate(engine)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT loan_id, terms_hash, terms FROM terms_versions ORDER BY loan_id")
            ).all()
        assert [(r[0], r[1]) for r in rows] == [("0x" + "11" * 32, digest), ("0x" + "22" * 32, digest)]
        assert all((json.loads(r[2]) if isinstance(r[2], str) else r[2]) == terms for r in rows)
        _downgrade(engine, "0016")
        assert "terms_versions" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
