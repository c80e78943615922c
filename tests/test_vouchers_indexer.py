"""Supply-chain vouchers through the real indexer, on SQLite and PostgreSQL: a voucher's whole life
(credit line, 确权, a three-level split and transfer, financing one part, settlement of every part) mirrored
exactly as the chain keeps it; the mirror's voucher rows equal a fresh index of the same chain after a reorg
of voucher blocks is undone; a rebuild from the raw events gives the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import h
from indexer_support import forget_nonces
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel
from voucher_support import DAY, FACE, Chain, make_chain

from ledger.audit.vouchers import verify_voucher
from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.mirror.indexer import Indexer
from ledger.mirror.models import VOUCHER_TABLES
from ledger.mirror.voucher_read import VoucherReader, voucher_tree
from ledger.protocol.codes import PartState
from ledger.store.db import create_db_engine, migrate


@pytest.fixture
def sc(private_client: ChainClient, compiled: CompiledContract) -> Iterator[Chain]:
    chain = make_chain(private_client, compiled)
    chain.set_line()
    yield chain


def index(engine: Engine, sc: Chain) -> int:
    with Indexer(engine, sc.client, sc.deployment) as indexer:
        indexer.run_once()
        return indexer.checkpoint.block_number


def voucher_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the voucher tables, sorted: what two mirrors of one chain must agree on."""
    out = {}
    with engine.connect() as conn:
        for name in VOUCHER_TABLES:
            table = SQLModel.metadata.tables[name]
            out[name] = sorted(tuple(r) for r in conn.execute(sa.select(table)))
    return out


def fresh_index(sc: Chain, tmp_path: Path, label: str) -> dict[str, list[tuple[Any, ...]]]:
    engine = create_db_engine(f"sqlite:///{tmp_path / f'{label}.db'}")
    migrate(engine)
    index(engine, sc)
    rows = voucher_rows(engine)
    engine.dispose()
    return rows


def assert_mirror_matches_chain(engine: Engine, sc: Chain) -> int:
    """Every mirrored voucher, part and credit line equals what the contract holds; returns parts checked."""
    v = sc.vouchers
    t = SQLModel.metadata.tables
    with engine.connect() as conn:
        vouchers = conn.execute(sa.select(t["vouchers"])).all()
        parts = conn.execute(sa.select(t["voucher_parts"])).all()
        lines = conn.execute(sa.select(t["credit_lines"])).all()
    for row in vouchers:
        state = v.get_voucher(row.voucher_id)
        assert (row.core_org, row.face_value, row.settled, row.maturity, row.currency, row.invoice_hash) == (
            state.core_org,
            state.face_value,
            state.settled,
            state.maturity,
            state.currency,
            state.invoice_hash,
        )
        assert row.head == state.head == v.head_of(row.voucher_id)
    for row in parts:
        assert v.get_part(row.voucher_id, row.part_id) == (row.holder, row.remaining, PartState(row.state))
    for row in lines:
        line = v.credit_line_of(row.core_org)
        assert (row.bank_org, row.line_limit, row.outstanding, row.expiry, row.terms_hash) == (
            line.bank_org,
            line.limit,
            line.outstanding,
            line.expiry,
            line.terms_hash,
        )
    return len(parts)


def whole_life(sc: Chain) -> tuple[str, list[int]]:
    """Issue, split three levels down, finance one part, leave the rest for settlement; the part numbers."""
    c, v = sc.cast, sc.vouchers
    vid = sc.issue("indexed", FACE, days=30)
    p2, p3 = v.new_parts(
        v.split_transfer(
            c.supplier, vid, 1, [(c.supplier2.address, 100_000_00), (c.subsupplier.address, 50_000_00)]
        )
    )
    (p4,) = v.new_parts(v.split_transfer(c.supplier2, vid, p2, [(c.subsupplier.address, 40_000_00)]))
    (p5,) = v.new_parts(v.split_transfer(c.subsupplier, vid, p4, [(c.supplier.address, 10_000_00)]))
    v.request_financing(c.subsupplier, voucher_id=vid, part_id=p3, bank_org=c.bank_org, discount_rate_bps=500)
    v.accept_financing(c.bank, voucher_id=vid, part_id=p3, payment_ref=h("pay:p3"))
    return vid, [1, p2, p3, p4, p5]


def test_a_vouchers_whole_life_is_mirrored(db_engine: Engine, sc: Chain) -> None:
    c, v = sc.cast, sc.vouchers
    vid, parts = whole_life(sc)
    index(db_engine, sc)
    assert assert_mirror_matches_chain(db_engine, sc) == 5
    t = SQLModel.metadata.tables
    with db_engine.connect() as conn:
        tree = {r.part_id: (r.parent_part_id, r.amount) for r in conn.execute(sa.select(t["voucher_parts"]))}
        financing = conn.execute(sa.select(t["voucher_financings"])).one()
        line = conn.execute(sa.select(t["credit_lines"])).one()
        voucher = conn.execute(sa.select(t["vouchers"])).one()
    p1, p2, p3, p4, p5 = parts
    assert tree == {
        1: (None, FACE),
        p2: (1, 100_000_00),
        p3: (1, 50_000_00),
        p4: (p2, 40_000_00),
        p5: (p4, 10_000_00),
    }
    assert (financing.part_id, financing.bank, financing.bank_org, financing.seller) == (
        p3,
        c.bank.address,
        c.bank_org,
        c.subsupplier.address,
    )
    assert (
        financing.interest == (50_000_00 * 500 * financing.discount_days + 1_800_000) // 3_600_000
    )  # half up
    assert financing.paid == 50_000_00 - financing.interest
    assert (line.outstanding, voucher.bank_org, voucher.event_count) == (FACE, c.bank_org, 7)

    # the trail as a tree, what part B renders; and the views of each party
    with db_engine.connect() as conn:
        reader = VoucherReader(conn, decoder=v.events)
        tree = voucher_tree(conn, vid)
        assert tree is not None and tree.outstanding() == FACE
        shape = [(n.part.part_id, [k.part.part_id for k in n.children]) for n in tree.parts]
        assert shape == [(1, [p2, p3]), (p2, [p4]), (p4, [p5]), (p5, []), (p3, [])]
        financed = next(n for n in tree.parts if n.part.part_id == p3)
        assert financed.financing is not None and financed.state == PartState.FINANCED
        assert [e.name for e in reader.events(vid)][:2] == ["VoucherIssued", "PartTransferred"]
        assert [p.part_id for p in reader.held_parts([c.subsupplier.address])] == [p4]
        assert [f.part_id for f in reader.financing_book(c.bank_org)] == [p3]
        (exposure,) = reader.exposure(c.bank_org, [c.bank.address, c.bank2.address])
        assert (exposure.core_org, exposure.financed_parts, exposure.face_outstanding) == (
            sc.core_org,
            1,
            50_000_00,
        )
        assert [x.voucher_id for x in reader.payables(sc.core_org)] == [vid]
        maturity = tree.voucher.maturity
        assert reader.overdue_parts(maturity - 1) == [] and not any(
            n.overdue(maturity - 1) for n in tree.parts
        )
        assert {p.part_id for p in reader.overdue_parts(maturity)} == {1, p2, p3, p4, p5}

    # maturity: every part with something left is settled, the line is freed
    sc.advance(31 * DAY)
    for part in parts:
        if v.get_part(vid, part).remaining:
            v.settle(sc.core, voucher_id=vid, part_id=part, payment_ref=h(f"settle:{part}"))
    index(db_engine, sc)
    assert_mirror_matches_chain(db_engine, sc)
    with db_engine.connect() as conn:
        assert conn.execute(sa.select(t["credit_lines"].c.outstanding)).scalar_one() == 0
        assert conn.execute(sa.select(t["vouchers"].c.settled)).scalar_one() == FACE
        settled = conn.execute(sa.select(sa.func.count()).select_from(t["voucher_settlements"])).scalar_one()
        events = conn.execute(
            sa.select(sa.func.count()).select_from(t["events"]).where(t["events"].c.voucher_id == vid)
        ).scalar_one()
    assert settled == 5 and events == 12  # issue, 4 transfers, request, finance, 5 settlements
    with db_engine.connect() as conn:
        assert VoucherReader(conn).overdue_parts(sc.now() + 365 * DAY) == []
    verified = verify_voucher(db_engine, v, vid)
    assert verified.ok, verified.problems  # the whole life verifies clean against the chain


def test_a_reorg_of_voucher_blocks_is_undone(db_engine: Engine, sc: Chain, tmp_path: Path) -> None:
    c, v = sc.cast, sc.vouchers
    vid, parts = whole_life(sc)
    index(db_engine, sc)
    snapshot = sc.client.rpc("evm_snapshot")
    # the soon orphaned branch: another split, a financing request and a new voucher
    v.split_transfer(c.supplier, vid, 1, [(c.subsupplier.address, 5_000_00)])
    v.request_financing(
        c.supplier2, voucher_id=vid, part_id=parts[1], bank_org=c.other_bank_org, discount_rate_bps=300
    )
    sc.issue("orphaned", 1_000_00)
    index(db_engine, sc)
    assert sc.client.rpc("evm_revert", [snapshot]) is True
    forget_nonces(sc.client)
    # the canonical branch, longer: a different split and a settlement-free financing by the other bank
    v.split_transfer(c.supplier, vid, 1, [(c.supplier2.address, 7_000_00)])
    v.request_financing(
        c.supplier, voucher_id=vid, part_id=1, bank_org=c.other_bank_org, discount_rate_bps=250
    )
    v.accept_financing(c.other_bank, voucher_id=vid, part_id=1, payment_ref=h("pay:other"))
    sc.issue("canonical", 2_000_00)
    index(db_engine, sc)
    assert_mirror_matches_chain(db_engine, sc)
    assert voucher_rows(db_engine) == fresh_index(sc, tmp_path, "fresh")


def test_rebuilding_from_the_raw_events_gives_the_same_voucher_rows(db_engine: Engine, sc: Chain) -> None:
    whole_life(sc)
    index(db_engine, sc)
    before = voucher_rows(db_engine)
    with Indexer(db_engine, sc.client, sc.deployment) as indexer:
        indexer.rebuild_projections()
    assert voucher_rows(db_engine) == before


def test_a_part_unpaid_past_maturity_raises_an_alert_until_it_is_settled(
    db_engine: Engine, sc: Chain
) -> None:
    """到期未兑付: at maturity every part with something unpaid is alerted (the sweep sees the clock move);
    each settlement resolves its part's alert in the batch that mirrors it; the one part left unpaid stays
    open with its amount, holder and days overdue."""
    from ledger.monitoring.monitor import Monitor
    from ledger.monitoring.vouchers import VOUCHER_PART_OVERDUE

    v = sc.vouchers
    vid, parts = whole_life(sc)
    monitor = Monitor(sweep_seconds=3600)

    def run() -> list[Any]:
        with Indexer(db_engine, sc.client, sc.deployment, after_batch=monitor.after_batch) as indexer:
            indexer.run_once()
        alerts = SQLModel.metadata.tables["alerts"]
        with db_engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(alerts)
                    .where(alerts.c.rule == VOUCHER_PART_OVERDUE)
                    .order_by(alerts.c.cause_key)
                )
            )

    assert run() == []  # not yet due
    sc.advance(31 * DAY)
    raised = run()
    assert sorted(a.cause_key for a in raised) == sorted(f"part:{p}" for p in parts)
    assert all(a.state == "open" and a.loan_id == vid and "到期未兑付" in a.title for a in raised)
    *settled_now, left_unpaid = parts
    for part in settled_now:
        v.settle(sc.core, voucher_id=vid, part_id=part, payment_ref=h(f"settle:{part}"))
    after = {a.cause_key: a for a in run()}
    assert {k for k, a in after.items() if a.state == "resolved" and a.resolved_by == "system"} == {
        f"part:{p}" for p in settled_now
    }
    open_alert = after[f"part:{left_unpaid}"]
    assert open_alert.state == "open"
    assert (
        open_alert.details["remaining"] == 10_000_00
        and open_alert.details["holder"] == sc.cast.supplier.address
    )
    assert open_alert.details["days_overdue"] >= 1
    v.settle(sc.core, voucher_id=vid, part_id=left_unpaid, payment_ref=h("settle:last"))
    assert all(a.state == "resolved" for a in run())


@pytest.mark.parametrize("seed", [1, 2])
def test_random_voucher_activity_conserves_face_value_and_mirrors_exactly(
    db_engine: Engine, sc: Chain, seed: int
) -> None:
    """Random splits, transfers, financings and settlements over three vouchers: on chain and in the mirror,
    every voucher's parts' remaining plus what was settled is its face value, the line's outstanding is the
    unsettled face of its vouchers, and the mirror equals the chain and verifies clean."""
    import random

    from ledger.errors import ContractRevertError

    rng = random.Random(seed)
    c, v = sc.cast, sc.vouchers
    holders = [c.supplier, c.supplier2, c.subsupplier]
    vouchers = [sc.issue(f"random-{seed}-{i}", rng.randint(1_000, 50_000_00), days=10) for i in range(3)]
    parts: dict[str, list[int]] = {vid: [1] for vid in vouchers}
    by_address = {a.address: a for a in [*holders, c.bank, c.other_bank]}
    for step in range(30):
        vid = rng.choice(vouchers)
        part = rng.choice(parts[vid])
        info = v.get_part(vid, part)
        holder = by_address[info.holder]
        action = rng.random()
        try:
            if action < 0.6 and info.remaining > 1:
                pieces = [
                    (rng.choice(holders).address, rng.randint(1, info.remaining // 2))
                    for _ in range(rng.randint(1, 3))
                ]
                parts[vid] += v.new_parts(v.split_transfer(holder, vid, part, pieces))
            elif action < 0.8 and info.state == 1 and info.remaining:
                bank, org = rng.choice([(c.bank, c.bank_org), (c.other_bank, c.other_bank_org)])
                v.request_financing(
                    holder, voucher_id=vid, part_id=part, bank_org=org, discount_rate_bps=rng.randint(1, 900)
                )
                v.accept_financing(bank, voucher_id=vid, part_id=part, payment_ref=h(f"pay:{seed}:{step}"))
        except ContractRevertError as exc:  # only the refusals the state allows
            assert exc.error_name in ("VoucherInsufficientRemaining", "VoucherPartWrongState"), exc
    sc.advance(11 * DAY)
    for vid in vouchers:
        for part in rng.sample(parts[vid], len(parts[vid]) // 2):
            if v.get_part(vid, part).remaining:
                v.settle(sc.core, voucher_id=vid, part_id=part, payment_ref=h(f"settle:{part}"))
    index(db_engine, sc)
    assert assert_mirror_matches_chain(db_engine, sc) == sum(len(p) for p in parts.values())
    unsettled = 0
    for vid in vouchers:
        state = v.get_voucher(vid)
        assert sum(v.get_part(vid, p).remaining for p in parts[vid]) + state.settled == state.face_value
        unsettled += state.face_value - state.settled
        assert verify_voucher(db_engine, v, vid).ok
    assert v.credit_line_of(sc.core_org).outstanding == unsettled
    with db_engine.connect() as conn:  # the walk did split and finance, not only get refused
        financed = conn.execute(
            sa.select(sa.func.count()).select_from(SQLModel.metadata.tables["voucher_financings"])
        )
        assert financed.scalar_one() > 0 and sum(len(p) for p in parts.values()) > 10


def test_a_reorg_that_removes_a_settlement_reopens_its_overdue_alert(db_engine: Engine, sc: Chain) -> None:
    from ledger.monitoring.monitor import Monitor
    from ledger.monitoring.vouchers import VOUCHER_PART_OVERDUE

    v = sc.vouchers
    vid = sc.issue("reorg-alert", days=2)
    monitor = Monitor(sweep_seconds=10**9)  # one sweep (the first batch); after that only batches evaluate

    def states() -> dict[str, str]:
        with Indexer(db_engine, sc.client, sc.deployment, after_batch=monitor.after_batch) as indexer:
            indexer.run_once()
        alerts = SQLModel.metadata.tables["alerts"]
        with db_engine.connect() as conn:
            query = sa.select(alerts.c.cause_key, alerts.c.state).where(alerts.c.rule == VOUCHER_PART_OVERDUE)
            return dict(conn.execute(query).all())

    sc.advance(3 * DAY)
    assert states() == {"part:1": "open"}
    snapshot = sc.client.rpc("evm_snapshot")
    v.settle(sc.core, voucher_id=vid, part_id=1, payment_ref=h("settle"))
    assert states() == {"part:1": "resolved"}
    assert sc.client.rpc("evm_revert", [snapshot]) is True
    forget_nonces(sc.client)
    for _ in range(3):  # a longer branch without the settlement
        sc.client.rpc("evm_mine")
    assert states() == {"part:1": "open"}
    assert_mirror_matches_chain(db_engine, sc)


def test_the_decoding_worker_decodes_voucher_events_as_the_indexer_does(
    db_engine: Engine, sc: Chain, tmp_path: Path
) -> None:
    """A backfill through the decoding worker process (ranges of 4 blocks) gives the rows an in-process
    index gives: the worker knows the voucher contract's address and ABI too."""
    whole_life(sc)
    with Indexer(db_engine, sc.client, sc.deployment, initial_range=4) as indexer:
        indexer.start_decode_worker(wait=True)
        worker = indexer._worker
        assert worker is not None
        indexer.run_once()
        assert worker.decoded_ranges >= 3
    assert voucher_rows(db_engine) == fresh_index(sc, tmp_path, "in-process")
    assert assert_mirror_matches_chain(db_engine, sc) == 5
