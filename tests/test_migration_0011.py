"""Migration 0011 on SQLite and PostgreSQL: `loans.event_count` of rows mirrored before it gains the loan's
mirrored attestations (the projection now counts every event of the loan), and going down takes them off."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel
from test_migrations import _downgrade

import ledger.mirror.models  # noqa: F401  (registers the tables)
from ledger.store.db import create_db_engine, migrate

_ATTESTED, _PLAIN = "0x" + "11" * 32, "0x" + "22" * 32


def _loan(loan_id: str, event_count: int) -> dict[str, object]:
    return {
        "loan_id": loan_id,
        "lender_org": "0x" + "a1" * 32,
        "borrower": "0x" + "b2" * 20,
        "borrower_ref": "0x" + "c3" * 32,
        "principal": 1_000_00,
        "currency": "CNY",
        "allowed_purposes": 2,
        "maturity": 1_900_000_000,
        "terms_hash": "0x" + "d4" * 32,
        "disbursed": 0,
        "repaid": 0,
        "status": 1,
        "risk_class": 0,
        "head": "0x" + "e5" * 32,
        "event_count": event_count,
        "block_number": 5,
        "log_index": 0,
        "transaction_hash": "0x" + "f6" * 32,
        "updated_block": 9,
    }


def _attestation(block: int) -> dict[str, object]:
    return {
        "loan_id": _ATTESTED,
        "block_number": block,
        "log_index": 0,
        "transaction_hash": "0x" + "07" * 32,
        "auditor_org": "0x" + "08" * 32,
        "head": "0x" + "e5" * 32,
        "report_hash": "0x" + "09" * 32,
    }


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(i): int(n) for i, n in conn.execute(sa.text("SELECT loan_id, event_count FROM loans"))}


def test_0011_adds_mirrored_attestations_to_event_count_and_downgrades(db_url: str) -> None:
    engine = create_db_engine(db_url)
    tables = SQLModel.metadata.tables
    try:
        migrate(engine, "0009")
        with engine.begin() as conn:
            conn.execute(sa.insert(tables["loans"]), [_loan(_ATTESTED, 4), _loan(_PLAIN, 3)])
            conn.execute(sa.insert(tables["attestations"]), [_attestation(10), _attestation(12)])
        migrate(engine, "0011")
        assert _counts(engine) == {_ATTESTED: 6, _PLAIN: 3}
        _downgrade(engine, "0009")
        assert _counts(engine) == {_ATTESTED: 4, _PLAIN: 3}
    finally:
        engine.dispose()
