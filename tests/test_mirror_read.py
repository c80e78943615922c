"""The mirror's read model (`ledger.mirror.read.Mirror`) on SQLite and PostgreSQL, against a real chain: what
it answers equals what the chain says, the `document_refs` projection finds every document an event names,
a reorg takes the references of orphaned blocks away, and migration 0008 fills the projection of a mirror
built before it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from conftest import World, h, loan_events, make_world, open_loan
from indexer_support import assert_mirror_matches_chain, forget_nonces, mine_empty
from sqlalchemy.engine import Engine
from sqlmodel import Session

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.mirror.indexer import Indexer
from ledger.mirror.models import LoanPublic, LotPublic
from ledger.mirror.projections import document_arguments
from ledger.mirror.read import RECORD_KINDS, LoanScope, Mirror
from ledger.protocol.events import EventDecoder
from ledger.store.db import MIGRATIONS_DIR, migrate

ZERO = "0x" + "00" * 32


def index(engine: Engine, world: World) -> int:
    with Indexer(engine, world.ledger.client, world.deployment) as indexer:
        indexer.run_once()
        return indexer.checkpoint.block_number


def _servicing(world: World) -> dict[str, str]:
    """A loan with two lots, a confirmation, a repayment, a classification, a valuation, an inspection, a
    restructuring and an attestation, each naming its own document; returns the labels' hashes and ids."""
    cast, ledger = world.cast, world.ledger
    loan_id = open_loan(world, "read-model")
    docs = {name: h(f"doc:{name}") for name in ("disbursed", "paid", "confirmed", "repaid", "why", "valued")}
    docs |= {"inspected": h("doc:inspected"), "restructured": h("doc:restructured"), "audit": h("doc:audit")}
    lot = str(
        ledger.disburse(
            cast.bank,
            loan_id=loan_id,
            payee=cast.supplier.address,
            amount=400_00,
            purpose=1,
            evidence_hash=docs["disbursed"],
        )
        .event("Disbursed")
        .args["lotId"]
    )
    child = str(
        ledger.pay(
            cast.supplier,
            loan_id=loan_id,
            from_lot=lot,
            payee=cast.subsupplier.address,
            amount=150_00,
            purpose=1,
            evidence_hash=docs["paid"],
        )
        .event("Paid")
        .args["lotId"]
    )
    ledger.confirm_lot(cast.subsupplier, loan_id=loan_id, lot_id=child, evidence_hash=docs["confirmed"])
    ledger.repay(cast.bank, loan_id=loan_id, amount=100_00, evidence_hash=docs["repaid"])
    ledger.classify(cast.bank, loan_id=loan_id, risk_class=1, reason_hash=docs["why"])
    ledger.value_collateral(
        cast.bank, loan_id=loan_id, collateral_id=h("collateral"), value=900_00, evidence_hash=docs["valued"]
    )
    ledger.record_inspection(cast.bank, loan_id=loan_id, kind=0, report_hash=docs["inspected"])
    maturity = ledger.get_loan(loan_id).maturity + 86_400
    ledger.restructure(cast.bank, loan_id=loan_id, maturity=maturity, terms_hash=docs["restructured"])
    ledger.attest(cast.auditor, loan_id=loan_id, head=ledger.head_of(loan_id), report_hash=docs["audit"])
    return {"loan_id": loan_id, "lot": lot, "child": child, **docs}


def test_mirror_reads_what_the_chain_says(db_engine: Engine, world: World) -> None:
    s = _servicing(world)
    at = index(db_engine, world)
    cast, loan_id = world.cast, s["loan_id"]
    with db_engine.connect() as conn:
        mirror = Mirror(conn, decoder=world.ledger.events)
        checkpoint = mirror.checkpoint()
        assert checkpoint is not None
        assert (checkpoint.block_number, checkpoint.contract_address) == (at, world.deployment.address)
        assert mirror.tip() == at

        loan = mirror.loan(loan_id)
        assert isinstance(loan, LoanPublic)
        truth = world.ledger.get_loan(loan_id)
        assert (loan.disbursed, loan.repaid, loan.risk_class, loan.head) == (
            truth.disbursed,
            truth.repaid,
            int(truth.risk_class),
            truth.head,
        )
        assert mirror.loan(h("loan:nowhere")) is None

        lots = mirror.lots(loan_id)
        assert [lot.lot_id for lot in lots] == [s["lot"], s["child"]]
        assert all(isinstance(lot, LotPublic) for lot in lots)
        assert (lots[0].remaining, lots[1].parent_lot_id, lots[1].confirmation) == (
            250_00,
            s["lot"],
            "confirmed",
        )
        assert mirror.lot(s["child"].upper().replace("0X", "0x")) == lots[1]
        assert mirror.lots_by_id([s["lot"], h("lot:nowhere")]) == {s["lot"]: lots[0]}
        assert mirror.held_lots([cast.subsupplier.address]) == [lots[1]]
        assert mirror.held_lots([cast.subsupplier.address], confirmation="unconfirmed") == []
        assert mirror.count_held_lots([cast.supplier.address, cast.subsupplier.address]) == 2

        records = mirror.records(loan_id)
        assert [r.amount for r in records.repayments] == [100_00]
        assert [(r.risk_class, r.reason_hash) for r in records.classifications] == [(1, s["why"])]
        assert [r.value for r in records.collateral_valuations] == [900_00]
        assert [r.report_hash for r in records.inspections] == [s["inspected"]]
        assert [r.terms_hash for r in records.restructurings] == [s["restructured"]]
        assert [(r.lot_id, r.state) for r in records.confirmations] == [(s["child"], "confirmed")]
        assert [r.report_hash for r in records.attestations] == [s["audit"]]
        assert mirror.records(loan_id, ["repayments"]).classifications == ()
        with pytest.raises(KeyError, match="not a kind of loan record"):
            mirror.records(loan_id, ["loans"])

        chain = loan_events(world, loan_id)
        assert [
            (
                e.name,
                e.args,
                e.block_number,
                e.block_hash,
                e.transaction_hash,
                e.log_index,
                e.transaction_index,
            )
            for e in mirror.events(loan_id)
        ] == [
            (
                e.name,
                e.args,
                e.block_number,
                e.block_hash,
                e.transaction_hash,
                e.log_index,
                e.transaction_index,
            )
            for e in chain
        ]

        counts = mirror.counts()
        assert (counts.loans, counts.lots, counts.blocks) == (1, 2, at - world.deployment.block_number + 1)
        assert counts.event_counts["Paid"] == 1
        stamps = mirror.block_times([at, at + 1000])
        assert stamps == {at: world.ledger.client.get_header(at).timestamp}
        assert mirror.latest_block_time() == stamps[at]
        assert mirror.org_accounts(world.cast.bank_org) == sorted([cast.bank.address, cast.bank2.address])


def test_the_public_models_equal_validated_ones(db_engine: Engine, world: World) -> None:
    s = _servicing(world)
    index(db_engine, world)
    with Session(db_engine) as session:  # a Session serves as well as a Connection
        mirror = Mirror(session)
        values = [mirror.loan(s["loan_id"]), *mirror.lots(s["loan_id"])]
        records = mirror.records(s["loan_id"])
        for kind in RECORD_KINDS:
            values.extend(records.of(kind))
    assert len(values) == 10
    for value in values:
        assert value is not None
        assert type(value).model_validate(value.model_dump()) == value
        assert value.model_fields_set == set(type(value).model_fields)


def test_loan_scope_limits_what_a_reader_sees(db_engine: Engine, world: World) -> None:
    s = _servicing(world)
    other = open_loan(world, "other-bank", lender=world.cast.other_bank)
    index(db_engine, world)
    cast = world.cast
    with db_engine.connect() as conn:
        mirror = Mirror(conn)
        everyone = [loan.loan_id for loan in mirror.loans()]
        assert everyone == [s["loan_id"], other]
        assert [loan.loan_id for loan in mirror.loans(newest_first=True)] == [other, s["loan_id"]]
        assert [loan.loan_id for loan in mirror.loans(scope=LoanScope.of_lender(cast.other_bank_org))] == [
            other
        ]
        holder = LoanScope.of_accounts([cast.subsupplier.address])  # holds a lot of the first loan only
        assert [loan.loan_id for loan in mirror.loans(scope=holder)] == [s["loan_id"]]
        assert mirror.loan(other, holder) is None
        assert mirror.loans(scope=LoanScope.of_accounts([cast.outsider.address])) == []
        assert mirror.count_loans(borrower=cast.borrower.address.lower()) == 2
        assert mirror.count_loans(risk_class=1) == 1
        assert [loan.loan_id for loan in mirror.loans(offset=1, limit=1)] == [other]
        assert mirror.visible_loan_ids([s["loan_id"], other, h("loan:nowhere")], holder) == {s["loan_id"]}
        assert mirror.lender_orgs([s["loan_id"], other]) == {
            s["loan_id"]: cast.bank_org,
            other: cast.other_bank_org,
        }
        assert mirror.loan_ids(status=1) == sorted([s["loan_id"], other])
        assert [r[0] for r in conn.execute(holder.loan_ids())] == [s["loan_id"]]
        assert sorted(r[0] for r in conn.execute(LoanScope().loan_ids())) == sorted([s["loan_id"], other])


def test_document_refs_find_every_event_naming_a_digest(db_engine: Engine, world: World) -> None:
    s = _servicing(world)
    index(db_engine, world)
    chain = {(e.block_number, e.log_index): e for e in loan_events(world, s["loan_id"])}
    with db_engine.connect() as conn:
        mirror = Mirror(conn)
        expected = {
            "disbursed": ("Disbursed", "evidenceHash"),
            "paid": ("Paid", "evidenceHash"),
            "confirmed": ("LotConfirmed", "evidenceHash"),
            "repaid": ("Repaid", "evidenceHash"),
            "why": ("RiskClassified", "reasonHash"),
            "valued": ("CollateralValued", "evidenceHash"),
            "inspected": ("InspectionRecorded", "reportHash"),
            "restructured": ("LoanRestructured", "termsHash"),
            "audit": ("TrailAttested", "reportHash"),
        }
        for label, (event, argument) in expected.items():
            (ref,) = mirror.document_refs(s[label].upper().replace("0X", "0x"))  # any case
            assert (ref.digest, ref.loan_id, ref.event, ref.argument) == (
                s[label],
                s["loan_id"],
                event,
                argument,
            )
            truth = chain[(ref.block_number, ref.log_index)]
            assert (truth.name, truth.block_hash, truth.transaction_hash) == (
                event,
                ref.block_hash,
                ref.transaction_hash,
            )
        (terms,) = mirror.document_refs(h("terms:read-model"))
        assert (terms.event, terms.argument) == ("LoanOpened", "termsHash")
        # Participant events name documents too (an organisation's profile), with no loan.
        (profile,) = mirror.document_refs(h(f"profile:{world.cast.bank_org}"))
        assert (profile.event, profile.argument, profile.loan_id) == (
            "OrganizationRegistered",
            "profileHash",
            None,
        )
        # A hash no event names as a document: a lot id, a head, or nothing at all.
        assert mirror.document_refs(s["lot"]) == []
        assert mirror.document_refs(world.ledger.head_of(s["loan_id"])) == []
        assert mirror.document_refs("not a hash") == []


def test_the_zero_hash_names_no_document(db_engine: Engine, world: World) -> None:
    loan_id = open_loan(world, "no-evidence")
    world.ledger.disburse(  # evidence_hash defaults to the zero hash: a payment without evidence
        world.cast.bank, loan_id=loan_id, payee=world.cast.supplier.address, amount=10_00, purpose=1
    )
    index(db_engine, world)
    with db_engine.connect() as conn:
        assert Mirror(conn).document_refs(ZERO) == []
        assert [r.event for r in Mirror(conn).document_refs(h("terms:no-evidence"))] == ["LoanOpened"]


def test_one_digest_named_by_several_events_lists_each_in_chain_order(
    db_engine: Engine, world: World
) -> None:
    cast, ledger = world.cast, world.ledger
    loan_id = open_loan(world, "shared-doc")
    shared = h("doc:shared")
    ledger.disburse(
        cast.bank, loan_id=loan_id, payee=cast.supplier.address, amount=10_00, purpose=1, evidence_hash=shared
    )
    ledger.repay(cast.bank, loan_id=loan_id, amount=5_00, evidence_hash=shared)
    index(db_engine, world)
    with db_engine.connect() as conn:
        refs = Mirror(conn).document_refs(shared)
    assert [r.event for r in refs] == ["Disbursed", "Repaid"]
    assert refs[0].block_number < refs[1].block_number


@pytest.fixture
def fork_world(private_client: ChainClient, compiled: CompiledContract) -> World:
    return make_world(private_client, compiled)


def test_a_reorg_removes_the_document_refs_of_orphaned_blocks(db_engine: Engine, fork_world: World) -> None:
    world = fork_world
    cast, ledger, client = world.cast, world.ledger, world.ledger.client
    loan_id = open_loan(world, "reorg-docs")
    kept, orphaned, replaced = h("doc:kept"), h("doc:orphaned"), h("doc:replaced")
    ledger.disburse(
        cast.bank, loan_id=loan_id, payee=cast.supplier.address, amount=10_00, purpose=1, evidence_hash=kept
    )
    index(db_engine, world)
    snapshot = client.rpc("evm_snapshot")
    ledger.repay(cast.bank, loan_id=loan_id, amount=1_00, evidence_hash=orphaned)
    ledger.classify(cast.bank, loan_id=loan_id, risk_class=2, reason_hash=orphaned)
    ledger.register_organization(cast.operator, h("org:orphaned"), orphaned)  # a participant event's ref
    index(db_engine, world)
    with db_engine.connect() as conn:
        refs = Mirror(conn).document_refs(orphaned)
        assert [(r.event, r.loan_id) for r in refs] == [
            ("Repaid", loan_id),
            ("RiskClassified", loan_id),
            ("OrganizationRegistered", None),
        ]
    assert client.rpc("evm_revert", [snapshot]) is True
    forget_nonces(client)
    ledger.repay(cast.bank, loan_id=loan_id, amount=2_00, evidence_hash=replaced)
    mine_empty(client, 3)  # the new branch is longer than the orphaned one
    index(db_engine, world)
    with db_engine.connect() as conn:
        mirror = Mirror(conn)
        assert mirror.document_refs(orphaned) == []
        assert [r.event for r in mirror.document_refs(kept)] == ["Disbursed"]
        assert len(mirror.document_refs(h(f"profile:{cast.bank_org}"))) == 1  # rebuilt, not lost or doubled
        (ref,) = mirror.document_refs(replaced)
        assert ref.transaction_hash == loan_events(world, loan_id)[-1].transaction_hash
    assert_mirror_matches_chain(db_engine, ledger, world.deployment)


def _migration_0008() -> ModuleType:
    return _migration("0008")


def _migration(revision: str) -> ModuleType:
    path = next((MIGRATIONS_DIR / "versions").glob(f"{revision}_*.py"))
    spec = importlib.util.spec_from_file_location(f"migration_{revision}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_migration_0008_names_the_document_arguments_of_the_abi(compiled: CompiledContract) -> None:
    frozen = _migration_0008()._DOCUMENT_ARGUMENTS | _migration("0013")._DOCUMENT_ARGUMENTS
    # Events added since 0008 (issue 18) are new: no mirror built before them holds any to fill in.
    added_since = {"RepaymentApplied": ("evidenceHash",), "TermsChanged": ("termsHash",)}
    assert frozen | added_since == document_arguments(EventDecoder(compiled.abi))
    assert "LoanOpened" in frozen and "borrowerRef" not in frozen["LoanOpened"]


def test_migration_0008_fills_the_refs_of_a_mirror_built_before_it(db_engine: Engine, world: World) -> None:
    _servicing(world)
    index(db_engine, world)
    refs = sa.table("document_refs", sa.column("digest"), sa.column("block_number"), sa.column("log_index"))
    query = sa.text(
        "SELECT digest_key, digest, loan_id, block_number, log_index, event, argument FROM document_refs "
        "ORDER BY block_number, log_index, argument"
    )
    with db_engine.connect() as conn:
        projected = [tuple(r) for r in conn.execute(query)]
    assert len(projected) == 9 + 1 + 8  # the servicing's documents, the loan's terms, the 8 orgs' profiles
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0007")
    assert not sa.inspect(db_engine).has_table("document_refs")
    migrate(db_engine)
    with db_engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(query)] == projected
        assert conn.execute(sa.select(sa.func.count()).select_from(refs)).scalar_one() == len(projected)
    assert_mirror_matches_chain(db_engine, world.ledger, world.deployment)


def test_events_need_the_decoder(db_engine: Engine) -> None:
    with db_engine.connect() as conn, pytest.raises(ValueError, match="needs the ledger's event decoder"):
        Mirror(conn).events(ZERO)


def test_an_unmigrated_database_has_no_mirror(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with engine.connect() as conn:
        assert Mirror(conn).exists() is False
    engine.dispose()
