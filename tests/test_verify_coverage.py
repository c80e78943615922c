"""Verification misses nothing the API serves about a loan or its lots, proven generically from the schema.

For every column of the `loans` and `lots` tables and of every per-loan record table the read model serves
(`RECORD_KINDS`: repayments, classifications, ...): if the API serves it (a field of `LoanOut` / `LotOut` /
the record's public model), tampering with it in the mirror must make verification fail and name it; a
column verification does not check must be declared in `ledger.audit.facts.NOT_CHAIN_FACTS` with a reason,
and must not be served. A new column or record table that is in neither map fails here, naming itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from conftest import World, h
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel
from test_verify import index, make_trail

from api.schemas import LoanOut, LotOut
from ledger.audit.facts import LOAN_FACTS, LOT_FACTS, NOT_CHAIN_FACTS, RECORD_FACTS
from ledger.audit.verify import Verification, directory_documents, verify_loan
from ledger.mirror.read import RECORD_KINDS

_TABLES: dict[str, tuple[type[SQLModel], dict[str, Any]]] = {
    "loans": (LoanOut, LOAN_FACTS),
    "lots": (LotOut, LOT_FACTS),
    **{t: (model, RECORD_FACTS[t].columns if t in RECORD_FACTS else {}) for t, model in RECORD_KINDS.items()},
}
_FACTS_NAME = {"loans": "LOAN_FACTS", "lots": "LOT_FACTS"}


def _columns(table: str) -> list[str]:
    return [c.name for c in SQLModel.metadata.tables[table].columns]


def _served(table: str) -> set[str]:
    model, _ = _TABLES[table]
    return set(model.model_fields) & set(_columns(table))


def test_every_loan_and_lot_column_is_a_declared_chain_fact_or_declared_not_served() -> None:
    lacking = []
    for table, (model, facts) in _TABLES.items():
        for column in _columns(table):
            declared = NOT_CHAIN_FACTS.get((table, column))
            if column in facts:
                continue
            if declared is None:
                facts_name = _FACTS_NAME.get(table, f"RECORD_FACTS[{table!r}].columns")
                lacking.append(
                    f"{table}.{column}: not verified (no entry in ledger.audit.facts.{facts_name} naming its "
                    "chain source) and not declared in NOT_CHAIN_FACTS with a reason"
                )
            elif column in model.model_fields:
                lacking.append(
                    f"{table}.{column}: declared not served ({declared}), but {model.__name__} serves it"
                )
    stale = [f"{t}.{c}" for t, c in NOT_CHAIN_FACTS if c not in _columns(t)]
    stale += [f"{t}.{c}" for t, (_, facts) in _TABLES.items() for c in facts if c not in _columns(t)]
    lacking += [
        f"{t}: a record table the read model serves (RECORD_KINDS) with no RECORD_FACTS entry naming its "
        "events"
        for t in RECORD_KINDS
        if t not in RECORD_FACTS
    ]
    assert not lacking, "columns without verification coverage:\n" + "\n".join(lacking)
    assert not stale, f"declared columns that the tables no longer have: {stale}"


def _other_hash(value: str) -> str:
    return value[:-1] + ("0" if value[-1] != "0" else "1")


def _tampered(column: sa.Column[Any], value: Any, world: World) -> Any:
    """A different value of the column's type that the row could plausibly hold."""
    if isinstance(value, bool):
        return not value
    if value is None:
        if isinstance(column.type, sa.Boolean):
            return True
        if isinstance(column.type, sa.String):
            return h(f"forged {column.name}")
        return 7
    if isinstance(value, int):
        return value + 1 if column.name != "risk_class" or value < 4 else value - 1
    text = str(value)
    if text.startswith("0x") and len(text) == 42:
        return world.cast.outsider.address
    if text.startswith("0x"):
        return _other_hash(text)
    return {"CNY": "USD", "unconfirmed": "confirmed", "confirmed": "disputed", "disputed": "confirmed"}.get(
        text, text + "X"
    )


def _tamper_each(
    engine: Engine,
    targets: dict[str, Any],
    columns: dict[str, list[str]],
    world: World,
    problems: Callable[[], list[str] | None],
) -> tuple[list[str], int]:
    """Forge each of `columns` of the row `targets` picks in each table, in turn, run `problems` (None: it
    verified) and put the value back; the columns verification passed or did not name, and how many were
    tried."""
    missed: list[str] = []
    tried = 0
    for table_name, where in targets.items():
        table = SQLModel.metadata.tables[table_name]
        for column_name in columns[table_name]:
            column = table.c[column_name]
            with engine.begin() as conn:
                row = conn.execute(sa.select(table).where(where)).one()
                original = row._mapping[column_name]
                forged = _tampered(column, original, world)
                pk = {c.name: row._mapping[c.name] for c in table.primary_key.columns}
                match = sa.and_(*(table.c[k] == v for k, v in pk.items()))
                conn.execute(sa.update(table).where(match).values({column_name: forged}))
            try:
                found = problems()
            finally:
                restored = {**pk, column_name: forged} if column_name in pk else pk
                with engine.begin() as conn:
                    again = sa.and_(*(table.c[k] == v for k, v in restored.items()))
                    conn.execute(sa.update(table).where(again).values({column_name: original}))
            tried += 1
            if found is None or not [p for p in found if column_name in p]:
                missed.append(
                    f"{table_name}.{column_name} ({original!r} -> {forged!r}): "
                    f"{'VERIFIED' if found is None else 'not named in ' + repr(found)}"
                )
    return missed, tried


def _verify(engine: Engine, world: World, loan_id: str, docs: Path) -> Verification:
    return verify_loan(engine, world.ledger, loan_id, documents=directory_documents(docs))


def test_tampering_any_served_loan_or_lot_column_fails_verification_naming_it(
    db_engine: Engine, world: World, tmp_path: Path
) -> None:
    trail = make_trail(world, tmp_path)
    ledger, bank = world.ledger, world.cast.bank
    # A row in every record table (make_trail has a confirmation, a repayment and an attestation).
    ledger.classify(bank, loan_id=trail.loan_id, risk_class=1, reason_hash=h("late invoice"))
    ledger.value_collateral(
        bank,
        loan_id=trail.loan_id,
        collateral_id=h("warehouse"),
        value=300_000_00,
        evidence_hash=h("appraisal"),
    )
    ledger.record_inspection(bank, loan_id=trail.loan_id, kind=0, report_hash=h("site visit"))
    ledger.file_record(
        bank, loan_id=trail.loan_id, record_kind=0, record_id=h("guarantee 1"), content_hash=h("guarantee")
    )
    ledger.restructure(
        bank, loan_id=trail.loan_id, maturity=int(time.time()) + 500 * 86400, terms_hash=h("new terms")
    )
    ledger.close_loan(bank, loan_id=trail.loan_id, status=3, reason_hash=h("write-off"))
    index(db_engine, world)
    honest = _verify(db_engine, world, trail.loan_id, trail.docs_dir)
    assert honest.ok, honest.problems()

    # The loan row, the child lot (a payment: it has a parent, a confirmation, no `entrusted`) and the
    # loan's row in each record table.
    targets = {
        "loans": sa.column("loan_id") == trail.loan_id,
        "lots": sa.and_(sa.column("loan_id") == trail.loan_id, sa.column("lot_id") == trail.child),
        **{t: sa.column("loan_id") == trail.loan_id for t in RECORD_KINDS},
    }

    def problems() -> list[str] | None:
        result = _verify(db_engine, world, trail.loan_id, trail.docs_dir)
        return None if result.ok else result.problems()

    columns = {t: sorted(_served(t)) for t in targets}
    missed, tried = _tamper_each(db_engine, targets, columns, world, problems)
    assert not missed, "tampered columns verification did not report:\n" + "\n".join(missed)
    assert tried == sum(len(_served(t)) for t in targets)
    assert _verify(db_engine, world, trail.loan_id, trail.docs_dir).ok


def test_tampered_repaid_is_named_with_its_chain_source(
    db_engine: Engine, world: World, tmp_path: Path
) -> None:
    """The issue's case: outstanding 474,999,999 instead of 475,000,000 fen because `repaid` was raised."""
    trail = make_trail(world, tmp_path)
    index(db_engine, world)
    loans = SQLModel.metadata.tables["loans"]
    with db_engine.begin() as conn:
        conn.execute(sa.update(loans).where(loans.c.loan_id == trail.loan_id).values(repaid=50_000_01))
    result = _verify(db_engine, world, trail.loan_id, trail.docs_dir)
    assert not result.ok
    assert result.loan_problems == [f"loan repaid: mirror {50_000_01}, getLoan.repaid {50_000_00}"]
    assert result.summary.startswith("FAILED")


# ---------------------------------------------------------------------------------- vouchers (issue 22)


def test_every_voucher_column_is_a_declared_chain_fact() -> None:
    from ledger.audit.vouchers import FACTS_BY_TABLE
    from ledger.audit.vouchers import NOT_CHAIN_FACTS as VOUCHER_NOT_CHAIN_FACTS
    from ledger.mirror.models import VOUCHER_TABLES

    lacking = [
        f"{table}.{column}: not verified (no entry in ledger.audit.vouchers naming its chain source) and not "
        "declared in its NOT_CHAIN_FACTS with a reason"
        for table in VOUCHER_TABLES
        for column in _columns(table)
        if column not in FACTS_BY_TABLE.get(table, {}) and (table, column) not in VOUCHER_NOT_CHAIN_FACTS
    ]
    stale = [f"{t}.{c}" for t, facts in FACTS_BY_TABLE.items() for c in facts if c not in _columns(t)]
    assert not lacking, "voucher columns without verification coverage:\n" + "\n".join(lacking)
    assert not stale, f"declared voucher columns the tables no longer have: {stale}"


def test_tampering_any_voucher_column_fails_verification_naming_it(
    db_engine: Engine, private_client: Any, compiled: Any
) -> None:
    """A voucher's whole life (split, financing, settlement) mirrored and verified clean; then every column
    of its row, of a financed and settled part, of its financing and settlement and of the credit line is
    forged in turn, and verification must fail naming it."""
    from voucher_support import DAY, make_chain

    from ledger.audit.vouchers import FACTS_BY_TABLE, verify_voucher
    from ledger.mirror.indexer import Indexer

    sc = make_chain(private_client, compiled)
    sc.set_line()
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("tamper", days=10)
    (part,) = v.new_parts(v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 100_000_00)]))
    v.request_financing(c.supplier2, voucher_id=vid, part_id=part, bank_org=c.bank_org, discount_rate_bps=400)
    v.accept_financing(c.bank, voucher_id=vid, part_id=part, payment_ref=h("pay"))
    sc.advance(11 * DAY)
    v.settle(sc.core, voucher_id=vid, part_id=part, payment_ref=h("settle"))
    with Indexer(db_engine, sc.client, sc.deployment) as indexer:
        indexer.run_once()
    honest = verify_voucher(db_engine, v, vid)
    assert honest.ok, honest.problems

    targets = {
        "vouchers": sa.column("voucher_id") == vid,
        "voucher_parts": sa.and_(sa.column("voucher_id") == vid, sa.column("part_id") == part),
        "voucher_financings": sa.column("voucher_id") == vid,
        "voucher_settlements": sa.column("voucher_id") == vid,
        "credit_lines": sa.column("core_org") == sc.core_org,
    }
    assert set(targets) == set(FACTS_BY_TABLE)

    def problems() -> list[str] | None:
        result = verify_voucher(db_engine, v, vid)
        return None if result.ok else result.problems

    missed, tried = _tamper_each(db_engine, targets, {t: _columns(t) for t in targets}, sc.world, problems)
    assert not missed, "tampered voucher columns verification did not report:\n" + "\n".join(missed)
    assert tried == sum(len(_columns(t)) for t in targets)
    assert verify_voucher(db_engine, v, vid).ok
