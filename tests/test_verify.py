"""Online verification against the real Hardhat node, on SQLite and PostgreSQL: an honest mirror verifies,
and every kind of tampering with the mirror or the document store is caught and pointed at."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import World, disburse_lot, h, open_loan, pay_lot
from eth_utils import keccak
from sqlalchemy.engine import Engine

from ledger.audit.verify import Verification, directory_documents, verify_loan
from ledger.errors import NotFoundError
from ledger.mirror.indexer import Indexer


@dataclass
class Trail:
    loan_id: str
    lot: str
    child: str
    docs_dir: Path
    docs: dict[str, bytes]


def _doc(docs_dir: Path, docs: dict[str, bytes], text: str) -> str:
    content = text.encode()
    digest = "0x" + keccak(content).hex()
    (docs_dir / digest).write_bytes(content)
    docs[digest] = content
    return digest


def make_trail(world: World, tmp_path: Path) -> Trail:
    """A loan with a disbursement, a payment, a confirmation, a repayment and an attestation, its evidence
    documents in a directory store like the API's."""
    docs_dir = tmp_path / "documents"
    docs_dir.mkdir()
    docs: dict[str, bytes] = {}
    cast, ledger = world.cast, world.ledger
    loan_id = open_loan(world, "verify")
    lot = (
        ledger.disburse(
            cast.bank,
            loan_id=loan_id,
            payee=cast.supplier.address,
            amount=400_000_00,
            purpose=1,
            evidence_hash=_doc(docs_dir, docs, "invoice 1: 400,000.00 CNY of steel"),
        )
        .event("Disbursed")
        .args["lotId"]
    )
    child = (
        ledger.pay(
            cast.supplier,
            loan_id=loan_id,
            from_lot=lot,
            payee=cast.subsupplier.address,
            amount=100_000_00,
            purpose=1,
            evidence_hash=_doc(docs_dir, docs, "invoice 2: ore"),
        )
        .event("Paid")
        .args["lotId"]
    )
    ledger.confirm_lot(
        cast.subsupplier, loan_id=loan_id, lot_id=child, evidence_hash=_doc(docs_dir, docs, "receipt")
    )
    ledger.repay(
        cast.bank, loan_id=loan_id, amount=50_000_00, evidence_hash=_doc(docs_dir, docs, "bank slip")
    )
    ledger.attest(cast.auditor, loan_id=loan_id, head=ledger.head_of(loan_id), report_hash=h("audit report"))
    # Another loan on the same contract: its events must not leak into this trail.
    other = open_loan(world, "other")
    disburse_lot(world, other, cast.supplier, 1_000)
    return Trail(loan_id, lot, child, docs_dir, docs)


def index(engine: Engine, world: World) -> int:
    with Indexer(engine, world.ledger.client, world.deployment) as indexer:
        indexer.run_once()
        return indexer.checkpoint.block_number


def verify(engine: Engine, world: World, trail: Trail, **kwargs: Any) -> Verification:
    return verify_loan(
        engine, world.ledger, trail.loan_id, documents=directory_documents(trail.docs_dir), **kwargs
    )


@pytest.fixture
def indexed(db_engine: Engine, world: World, tmp_path: Path) -> Trail:
    trail = make_trail(world, tmp_path)
    index(db_engine, world)
    return trail


def _event_row(engine: Engine, loan_id: str, name: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT block_hash, log_index, block_number, args FROM events "
                "WHERE loan_id = :l AND name = :n"
            ),
            {"l": loan_id, "n": name},
        ).one()


def _set_args(engine: Engine, row: Any, **changes: Any) -> None:
    args = row.args if isinstance(row.args, dict) else json.loads(row.args)
    args.update(changes)
    events = sa.table("events", sa.column("block_hash"), sa.column("log_index"), sa.column("args", sa.JSON))
    with engine.begin() as conn:
        conn.execute(
            sa.update(events)
            .where(events.c.block_hash == row.block_hash, events.c.log_index == row.log_index)
            .values(args=args)
        )


def test_honest_mirror_verifies_every_event_lot_and_document(
    db_engine: Engine, world: World, indexed: Trail
) -> None:
    result = verify(db_engine, world, indexed)
    assert result.problems() == []
    assert result.ok
    assert [e.name for e in result.events] == [
        "LoanOpened",
        "Disbursed",
        "Paid",
        "LotConfirmed",
        "Repaid",
        "TrailAttested",
    ]
    assert {lot.lot_id for lot in result.lots} == {indexed.lot, indexed.child}
    assert {d.hash for d in result.documents if d.present} == set(indexed.docs)
    assert all(d.ok for d in result.documents)
    assert result.head_on_chain == result.head_recomputed == world.ledger.head_of(indexed.loan_id)
    assert result.block_number == world.ledger.client.block_number()
    assert not result.trail_grew_since
    as_json = json.loads(json.dumps(result.to_dict()))
    assert as_json["ok"] is True and as_json["block"]["number"] == result.block_number
    assert as_json["summary"].startswith(
        f"VERIFIED at block {result.block_number}: 6/6 events (5 chained, 1 attestation), 2/2 lots"
    )
    # Every event carries its head, the attestation the head it attests; the loan row counts the same six.
    assert all(e["head"] is not None for e in as_json["events"])
    assert as_json["events"][-1]["head"] == as_json["events"][-2]["head"] == result.head_on_chain
    assert as_json["event_count"] == 6 and as_json["attestation_count"] == 1
    with db_engine.connect() as conn:
        count = conn.execute(
            sa.text("SELECT event_count FROM loans WHERE loan_id = :l"), {"l": indexed.loan_id}
        ).scalar_one()
    assert count == 6


def test_trail_that_grew_after_the_checkpoint_still_verifies_at_the_checkpoint(
    db_engine: Engine, world: World, indexed: Trail
) -> None:
    world.ledger.record_inspection(world.cast.bank, loan_id=indexed.loan_id, kind=0, report_hash=h("visit"))
    result = verify(db_engine, world, indexed)
    assert result.ok, result.problems()
    assert result.trail_grew_since
    assert result.head_now == world.ledger.head_of(indexed.loan_id) != result.head_on_chain


def test_edited_amount_in_a_mirrored_event_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    row = _event_row(db_engine, indexed.loan_id, "Paid")
    _set_args(db_engine, row, amount=str(100_000_00 + 1))
    result = verify(db_engine, world, indexed)
    assert not result.ok
    bad = [e for e in result.events if not e.ok]
    assert [(e.name, e.block_number, e.log_index) for e in bad] == [("Paid", row.block_number, row.log_index)]
    assert f"field amount: mirror {100_000_00 + 1}, chain {100_000_00}" in bad[0].problems
    assert any("hash chain breaks here" in p for p in bad[0].problems)
    assert result.head_recomputed != result.head_on_chain


def test_edited_payee_in_a_lot_projection_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lots SET holder = :x WHERE lot_id = :lot"),
            {"x": world.cast.outsider.address, "lot": indexed.child},
        )
    result = verify(db_engine, world, indexed)
    assert not result.ok
    bad = [lot for lot in result.lots if not lot.ok]
    assert [lot.lot_id for lot in bad] == [indexed.child]
    assert (
        f"holder: mirror {world.cast.outsider.address}, getLot.holder {world.cast.subsupplier.address}"
        in bad[0].problems
    )
    assert all(e.ok for e in result.events)  # the raw events are intact: only the projection lies


def test_edited_purpose_in_a_mirrored_event_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    row = _event_row(db_engine, indexed.loan_id, "Disbursed")
    _set_args(db_engine, row, purpose=3)
    result = verify(db_engine, world, indexed)
    bad = [e for e in result.events if not e.ok]
    assert [e.name for e in bad] == ["Disbursed"]
    assert "field purpose: mirror 3, chain 1" in bad[0].problems
    assert any(f"event Disbursed at block {row.block_number}" in p for p in result.problems())


def test_deleted_event_row_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    row = _event_row(db_engine, indexed.loan_id, "LotConfirmed")
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("DELETE FROM events WHERE block_hash = :b AND log_index = :i"),
            {"b": row.block_hash, "i": row.log_index},
        )
    result = verify(db_engine, world, indexed)
    assert not result.ok
    bad = [e for e in result.events if not e.ok]
    assert bad[0].name == "LotConfirmed" and bad[0].block_number == row.block_number
    assert "on chain but missing from the mirror" in bad[0].problems[0]
    # With the confirmation gone, the following event no longer chains onto the recomputed head.
    assert any("hash chain breaks here" in p for e in bad[1:] for p in e.problems)


def test_inserted_event_row_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    row = _event_row(db_engine, indexed.loan_id, "Repaid")
    with db_engine.begin() as conn:
        original = conn.execute(
            sa.text("SELECT * FROM events WHERE block_hash = :b AND log_index = :i"),
            {"b": row.block_hash, "i": row.log_index},
        ).one()
        fake = dict(original._mapping)
        fake["log_index"] = 7
        conn.execute(
            sa.text(
                "INSERT INTO events (chain_id, block_hash, log_index, block_number, transaction_hash, "
                "transaction_index, address, name, loan_id, args, topics, data) VALUES (:chain_id, "
                ":block_hash, :log_index, :block_number, :transaction_hash, :transaction_index, :address, "
                ":name, :loan_id, :args, :topics, :data)"
            ).bindparams(sa.bindparam("args", type_=sa.JSON), sa.bindparam("topics", type_=sa.JSON)),
            {**fake, "args": _as_dict(fake["args"]), "topics": _as_list(fake["topics"])},
        )
    result = verify(db_engine, world, indexed)
    assert not result.ok
    bad = [e for e in result.events if not e.ok]
    assert (bad[0].name, bad[0].block_number, bad[0].log_index) == ("Repaid", row.block_number, 7)
    assert "no log on chain" in bad[0].problems[0]


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else json.loads(value)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else json.loads(value)


def test_swapped_document_is_named(db_engine: Engine, world: World, indexed: Trail) -> None:
    target = next(d for d, content in indexed.docs.items() if content == b"receipt")
    (indexed.docs_dir / target).write_bytes(b"a different receipt")
    result = verify(db_engine, world, indexed)
    assert not result.ok
    bad = [d for d in result.documents if not d.ok]
    assert [d.hash for d in bad] == [target]
    assert bad[0].referenced_by == [
        f"LotConfirmed.evidenceHash at block {_block_of(result, 'LotConfirmed')} log 0"
    ]
    assert "altered or swapped" in str(bad[0].problem)


def _block_of(result: Verification, name: str) -> int:
    return next(e.block_number for e in result.events if e.name == name)


def test_unknown_loan_is_not_found(db_engine: Engine, world: World, indexed: Trail) -> None:
    with pytest.raises(NotFoundError):
        verify_loan(db_engine, world.ledger, h("loan:nope"))


def test_lot_projection_with_wrong_remaining_is_named(
    db_engine: Engine, world: World, indexed: Trail
) -> None:
    with db_engine.connect() as conn:
        raw = conn.execute(
            sa.text("SELECT remaining FROM lots WHERE lot_id = :l"), {"l": indexed.lot}
        ).scalar_one()
    tampered = f"{int(raw) + 5:020d}" if isinstance(raw, str) else int(raw) + 5
    with db_engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE lots SET remaining = :r WHERE lot_id = :l"), {"r": tampered, "l": indexed.lot}
        )
    result = verify(db_engine, world, indexed)
    bad = [lot for lot in result.lots if not lot.ok]
    assert [lot.lot_id for lot in bad] == [indexed.lot]
    assert f"remaining: mirror {int(raw) + 5}, getLot.remaining {int(raw)}" in bad[0].problems


def test_pay_lot_helper_trail(db_engine: Engine, world: World) -> None:
    """A trail built only by the conftest helpers (no documents) verifies; documents are optional."""
    loan_id = open_loan(world, "helpers")
    lot = disburse_lot(world, loan_id, world.cast.supplier, 10_000)
    pay_lot(world, world.cast.supplier, loan_id, lot, world.cast.supplier2, 4_000)
    index(db_engine, world)
    result = verify_loan(db_engine, world.ledger, loan_id)
    assert result.ok, result.problems()
    assert result.documents == []


def test_attestation_shows_the_trail_grew_since(db_engine: Engine, world: World, indexed: Trail) -> None:
    from ledger.audit.report import attestations_of

    assert [a.current for a in attestations_of(verify(db_engine, world, indexed))] == [True]
    world.ledger.record_inspection(world.cast.bank, loan_id=indexed.loan_id, kind=0, report_hash=h("visit"))
    index(db_engine, world)
    (attestation,) = attestations_of(verify(db_engine, world, indexed))
    assert (attestation.current, attestation.events_since) == (False, 1)
