"""The monitor: keeps the `alerts` table equal to what the rules say about the mirrored loans.

The indexer calls `Monitor.after_batch(conn, loan_ids, events)` inside the transaction of every batch and of
every reorg undo, so alerts commit (or roll back) with the rows they rest on. For each affected loan the
monitor

- deletes alerts whose events are gone (loan gone, or `source_block` above the newest block still mirrored),
- inserts an open alert (and its webhook outbox rows) for each new cause,
- refreshes the wording of alerts whose cause persists, leaving their lifecycle alone,
- resolves as `system` the open/acknowledged alerts whose cause went away, and reopens a system-resolved
  alert whose cause is back. A person's resolution stands.

Time-based rules (unconfirmed payments, lateness, stale valuations, inspections) also change as the chain's
clock moves, so every `sweep_seconds` of chain time the monitor re-checks all open loans.

Between sweeps a batch costs what it changed, not what its loans hold (issue 24): the indexer hands over the
events a batch applied (or an undo removed), and each rule with a `Scope` (`ledger.monitoring.rules`) is run
on the slice of the loan it reads for the causes those events can have changed: the new or changed lots
with their ancestors, the disbursements whose pass-through window they fall in, the near-threshold lots,
the lots of the payees paid, or the loan without its lots. Only the alerts of those causes are reconciled;
for them the result is what a whole evaluation gives. A loan opened, closed or restructured in the batch
(or touched by an event kind the monitor does not know), and any rule without a scope, is evaluated whole.
What that leaves to the sweep: causes of lots the batch did not touch that change with the clock alone (a
payment passing the unconfirmed limit, the day count in its wording), as for loans no batch touched.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.config import Settings
from ledger.mirror.read import Mirror
from ledger.monitoring.alerts import SYSTEM, Alert, WebhookDelivery, alert_payload
from ledger.monitoring.guarantees import load_book
from ledger.monitoring.preservation import load_cases
from ledger.monitoring.register import load_appraisals, load_items
from ledger.monitoring.rules import (
    RULE_SCOPES,
    RULES,
    Candidate,
    LoanFacts,
    LotFact,
    RecordFact,
    Rule,
    Scope,
    TermsChangeFact,
    Thresholds,
    days_past_due,
)
from ledger.monitoring.vouchers import VOUCHER_RULES, overdue_candidates, voucher_ids_of, vouchers_to_sweep
from ledger.protocol.codes import LoanStatus
from ledger.protocol.events import DecodedEvent
from ledger.protocol.terms import TermsProvider
from ledger.store.offchain import db_terms_provider, signers_of

__all__ = ["EvaluationResult", "Monitor", "latest_chain_time", "load_facts"]

log = logging.getLogger(__name__)


def _alerts() -> sa.Table:
    return Alert.__table__  # type: ignore[attr-defined,no-any-return]


def _deliveries() -> sa.Table:
    return WebhookDelivery.__table__  # type: ignore[attr-defined,no-any-return]


def latest_chain_time(conn: sa.Connection) -> int | None:
    """Timestamp of the newest mirrored block (the monitor's default 'now')."""
    return Mirror(conn).latest_block_time()


def load_facts(
    conn: sa.Connection,
    loan_id: str,
    terms: TermsProvider,
    now: int,
    *,
    guarantees: bool = True,
    with_lots: bool = True,
    penalty_rate_multiplier: Decimal = Decimal("1.5"),
) -> LoanFacts | None:
    """One loan's facts from the mirror, with block timestamps; None when the loan is not (any more) there.
    With `guarantees`, the ledger's active guarantees and their guarantors' own days past due too; without
    `with_lots`, no lots (days past due does not need them, and a loan may have 100,000)."""
    mirror = Mirror(conn)
    loan = mirror.loan(loan_id)
    if loan is None:
        return None
    lots = mirror.lots(loan_id) if with_lots else []
    records = mirror.records(loan_id, _RECORD_KINDS)
    numbers = {loan.block_number}
    numbers.update(lot.block_number for lot in lots)
    numbers.update(lot.confirmation_block for lot in lots if lot.confirmation_block is not None)
    numbers.update(r.block_number for r in records.repayments)
    numbers.update(r.block_number for r in records.collateral_valuations)
    numbers.update(r.block_number for r in records.inspections)
    numbers.update(r.block_number for r in records.restructurings)
    stamp = _stamps(mirror, numbers)
    signed = signers_of(conn, [lot.transaction_hash for lot in lots if lot.parent_lot_id is not None])
    return _loan_facts(
        conn,
        mirror,
        loan,
        lots,
        records,
        stamp,
        terms,
        now,
        signed,
        guarantees=guarantees,
        penalty_rate_multiplier=penalty_rate_multiplier,
    )


# The records the rules read: servicing (repayments, restructurings, classifications) and the post-loan file.
_RECORD_KINDS = ("repayments", "collateral_valuations", "inspections", "restructurings", "classifications")


def _stamps(mirror: Mirror, numbers: Iterable[int | None]) -> Callable[[int], int]:
    stamps = mirror.block_times(n for n in numbers if n is not None)

    def stamp(number: int) -> int:
        if number not in stamps:
            raise LookupError(f"block {number} is not in the mirror")
        return stamps[number]

    return stamp


def _lot_fact(lot: Any, stamp: Callable[[int], int], signed: Mapping[str, str]) -> LotFact:
    return LotFact(
        lot_id=lot.lot_id,
        parent_lot_id=lot.parent_lot_id,
        holder=lot.holder,
        amount=int(lot.amount),
        remaining=int(lot.remaining),
        purpose=int(lot.purpose),
        declared_use=bool(lot.declared_use),
        entrusted=lot.entrusted,
        confirmation=lot.confirmation,
        confirmation_block=lot.confirmation_block,
        confirmation_time=None if lot.confirmation_block is None else stamp(lot.confirmation_block),
        block_number=int(lot.block_number),
        log_index=int(lot.log_index),
        timestamp=stamp(lot.block_number),
        signer=signed.get(lot.transaction_hash.lower()),
    )


def _loan_facts(
    conn: sa.Connection,
    mirror: Mirror,
    loan: Any,
    lots: Sequence[Any],
    records: Any,
    stamp: Callable[[int], int],
    terms: TermsProvider,
    now: int,
    signed: Mapping[str, str],
    *,
    guarantees: bool = True,
    penalty_rate_multiplier: Decimal = Decimal("1.5"),
) -> LoanFacts:
    """The rules' view of one loan from its mirrored rows; `terms` gives any loan's terms (the guarantee
    book asks for the guarantors' own loans)."""
    # the collateral register (issue 19): items and appraisers' valuations, content checked, stamped here
    items = load_items(conn, loan.loan_id)
    appraisals = load_appraisals(conn, loan.loan_id)
    filed = mirror.block_times({f.first_block for f in items} | {a.block_number for a in appraisals})
    return LoanFacts(
        loan_id=loan.loan_id,
        lender_org=loan.lender_org,
        borrower=loan.borrower,
        principal=int(loan.principal),
        disbursed=int(loan.disbursed),
        repaid=int(loan.repaid),
        currency=loan.currency,
        maturity=int(loan.maturity),
        status=int(loan.status),
        block_number=int(loan.block_number),
        opened_at=stamp(loan.block_number),
        lots=[_lot_fact(lot, stamp, signed) for lot in lots],
        repayments=[
            RecordFact(
                r.block_number,
                r.log_index,
                stamp(r.block_number),
                int(r.amount),
                interest=int(r.interest or 0),
                penalty=int(r.penalty or 0),
            )
            for r in records.repayments
        ],
        valuations=[
            RecordFact(r.block_number, r.log_index, stamp(r.block_number), int(r.value), str(r.collateral_id))
            for r in records.collateral_valuations
        ]
        + [  # an engaged appraiser's signed valuations, content checked (the register's items)
            RecordFact(
                a.block_number, a.log_index, filed[a.block_number], a.appraisal.value, a.appraisal.item_id
            )
            for a in appraisals
        ],
        inspections=[
            RecordFact(r.block_number, r.log_index, stamp(r.block_number), 0, str(r.kind))
            for r in records.inspections
        ],
        terms=terms(loan.loan_id),
        now=now,
        lender_accounts=frozenset(a.lower() for a in mirror.org_accounts(loan.lender_org)),
        risk_class=int(loan.risk_class),
        guarantees=load_book(
            conn,
            lambda party: _borrower_days_past_due(conn, party, terms, now, penalty_rate_multiplier),
        )
        if guarantees
        else None,
        preservation=load_cases(conn, loan.loan_id),
        collateral_items=tuple(replace(f, registered_at=filed[f.first_block]) for f in items),
        terms_changes=[
            TermsChangeFact(
                r.block_number,
                r.log_index,
                stamp(r.block_number),
                int(r.maturity),
                r.change_kind,
                r.financial_difficulty,
                None if r.previous_maturity is None else int(r.previous_maturity),
                None if r.outstanding is None else int(r.outstanding),
            )
            for r in records.restructurings
        ],
        class_history=[(int(r.block_number), int(r.risk_class)) for r in records.classifications],
        penalty_rate_multiplier=penalty_rate_multiplier,
    )


def _borrower_days_past_due(
    conn: sa.Connection, borrower: str, terms: TermsProvider, now: int, multiplier: Decimal
) -> int:
    """The most days past due of `borrower`'s open loans in this ledger (0 if none is late)."""
    loans = sa.table("loans", sa.column("loan_id"), sa.column("borrower"), sa.column("status"))
    ids = conn.execute(
        sa.select(loans.c.loan_id).where(
            sa.func.lower(loans.c.borrower) == borrower.lower(), loans.c.status == int(LoanStatus.OPEN)
        )
    ).scalars()
    days = 0
    for loan_id in ids:
        facts = load_facts(
            conn,
            str(loan_id),
            terms,
            now,
            guarantees=False,
            with_lots=False,
            penalty_rate_multiplier=multiplier,
        )
        if facts is not None:
            days = max(days, days_past_due(facts))
    return days


def _loans_with_guarantees(conn: sa.Connection) -> set[str]:
    if not sa.inspect(conn).has_table("file_records"):
        return set()
    records = sa.table("file_records", sa.column("loan_id"))
    return {str(i) for i in conn.execute(sa.select(records.c.loan_id).distinct()).scalars()}


@dataclass
class EvaluationResult:
    raised: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    failed_rules: list[tuple[str, str]] = field(default_factory=list)


_REFRESHED = ("severity", "title", "explanation", "lot_ids", "details", "source_block")


class Monitor:
    """Evaluates `rules` for loans and writes alerts in the caller's transaction.

    `terms` maps a loan id to its structured terms; by default they are read from the API's `loan_metadata`
    table (only when they hash to the loan's current on-chain terms hash). `now` overrides the chain clock
    (tests); `webhook_urls` get one outbox row per new alert.
    """

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        *,
        terms: TermsProvider | None = None,
        webhook_urls: Sequence[str] = (),
        now: Callable[[], int] | None = None,
        rules: Mapping[str, Rule] | None = None,
        sweep_seconds: float = 3600.0,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.terms = terms
        self.webhook_urls = list(webhook_urls)
        self.now = now
        self.rules = dict(rules or RULES)
        self.sweep_seconds = sweep_seconds
        self._last_sweep: int | None = None
        # The voucher rules run unless `rules` names a set without them (a test of loan rules alone).
        self.vouchers = rules is None or bool(VOUCHER_RULES & set(rules))

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Monitor:
        return cls(
            Thresholds.from_settings(settings),
            webhook_urls=settings.webhook_urls,
            sweep_seconds=settings.monitor_sweep_hours * 3600,
            **kwargs,
        )

    # ------------------------------------------------------------------ indexer hook

    def after_batch(
        self,
        conn: sa.Connection,
        loan_ids: Iterable[str],
        events: Sequence[DecodedEvent] | None = None,
    ) -> EvaluationResult:
        """The indexer's callback: re-evaluate the loans a batch (or a reorg undo) touched, for what
        `events` (the ones it applied, or removed) can have changed; every open loan, whole, when a sweep
        is due. Without `events`, the touched loans are evaluated whole."""
        now = self._clock(conn)
        sweep = now is not None and (self._last_sweep is None or now - self._last_sweep >= self.sweep_seconds)
        result = self._after_loans(conn, loan_ids, events, now, sweep)
        if now is not None and self.vouchers:
            vouchers = voucher_ids_of(events or ())
            if sweep:
                vouchers |= vouchers_to_sweep(conn, now)
            self.evaluate_vouchers(conn, vouchers, now=now, result=result)
        return result

    def _after_loans(
        self,
        conn: sa.Connection,
        loan_ids: Iterable[str],
        events: Sequence[DecodedEvent] | None,
        now: int | None,
        sweep: bool,
    ) -> EvaluationResult:
        ids = set(loan_ids)
        if now is not None and sweep:
            ids.update(Mirror(conn).loan_ids(status=LoanStatus.OPEN))
            self._last_sweep = now
            # A preservation deadline runs on a written-off loan too, and guarantee circles span loans.
            ids.update(_loans_with_guarantees(conn))
            return self.evaluate(conn, ids, now=now)
        if events is None:
            return self.evaluate(conn, ids, now=now)
        if ids and any(e.name == "RecordFiled" for e in events):
            # A guarantee given or released on one loan changes its guarantors' circles on the others.
            return self.evaluate(conn, ids | _loans_with_guarantees(conn), now=now)
        return self.evaluate_changes(conn, ids, events, now=now)

    def evaluate_vouchers(
        self,
        conn: sa.Connection,
        voucher_ids: Iterable[str],
        *,
        now: int | None = None,
        result: EvaluationResult | None = None,
    ) -> EvaluationResult:
        """The voucher rules (`ledger.monitoring.vouchers`: a part unpaid past maturity, 到期未兑付) on these
        vouchers at chain time `now`, reconciled with their alerts like a loan's."""
        result = result if result is not None else EvaluationResult()
        clock = now if now is not None else self._clock(conn)
        ids = sorted(set(voucher_ids))
        if clock is None or not ids:
            return result
        tip = Mirror(conn).tip()
        top = -1 if tip is None else int(tip)
        t = _alerts()
        for voucher_id in ids:
            rows = conn.execute(
                sa.select(t).where(t.c.loan_id == voucher_id, t.c.rule.in_(sorted(VOUCHER_RULES)))
            ).all()
            found = overdue_candidates(conn, voucher_id, clock)
            existing = self._drop_orphans(conn, rows, top, result, gone=found is None)
            if found is None:
                continue
            candidates = {(c.rule, c.cause_key): c for c in found}
            self._apply(conn, existing, candidates, dict.fromkeys(VOUCHER_RULES), clock, result)
        return result

    def _clock(self, conn: sa.Connection) -> int | None:
        return self.now() if self.now is not None else latest_chain_time(conn)

    # ------------------------------------------------------------------ evaluation

    def facts(self, conn: sa.Connection, loan_id: str, *, now: int | None = None) -> LoanFacts | None:
        clock = now if now is not None else self._clock(conn)
        terms = self.terms or db_terms_provider(conn)
        return load_facts(
            conn, loan_id, terms, clock or 0, penalty_rate_multiplier=self.thresholds.penalty_rate_multiplier
        )

    def evaluate(
        self, conn: sa.Connection, loan_ids: Iterable[str], *, now: int | None = None
    ) -> EvaluationResult:
        result = EvaluationResult()
        ids = sorted(set(loan_ids))
        if not ids:
            return result
        clock = now if now is not None else self._clock(conn)
        if clock is None:
            return result
        terms = self.terms or db_terms_provider(conn)
        tip = Mirror(conn).tip()
        for loan_id in ids:
            facts = load_facts(
                conn, loan_id, terms, clock, penalty_rate_multiplier=self.thresholds.penalty_rate_multiplier
            )
            self._evaluate_loan(conn, loan_id, facts, -1 if tip is None else int(tip), clock, result)
        return result

    def evaluate_changes(
        self,
        conn: sa.Connection,
        loan_ids: Iterable[str],
        events: Sequence[DecodedEvent],
        *,
        now: int | None = None,
    ) -> EvaluationResult:
        """`evaluate`, for the causes `events` (a batch's, or those a reorg undo removed) can have changed:
        each rule with a scope sees only its slice of the loan (see the module's docstring)."""
        result = EvaluationResult()
        ids = sorted(set(loan_ids))
        if not ids:
            return result
        clock = now if now is not None else self._clock(conn)
        if clock is None:
            return result
        terms = self.terms or db_terms_provider(conn)
        mirror = Mirror(conn)
        tip = mirror.tip()
        top = -1 if tip is None else int(tip)
        changes = _changes(events)
        whole = any(name not in RULE_SCOPES for name in self.rules)
        for loan_id in ids:
            change = changes.get(loan_id)
            runs = None
            if change is not None and not change.whole and not whole:
                runs = self._slices(conn, mirror, loan_id, change, terms, clock, top)
            if runs is None:
                facts = load_facts(
                    conn,
                    loan_id,
                    terms,
                    clock,
                    penalty_rate_multiplier=self.thresholds.penalty_rate_multiplier,
                )
                self._evaluate_loan(conn, loan_id, facts, top, clock, result)
                continue
            # The alerts of the causes in scope: one query per set of causes (the rules of a scope share it).
            t = _alerts()
            by_keys: dict[frozenset[str] | None, list[str]] = {}
            for name, _, causes in runs:
                if causes is None or causes:
                    by_keys.setdefault(None if causes is None else frozenset(causes), []).append(name)
            rows: list[Any] = []
            for shared, names in by_keys.items():
                mine = sa.select(t).where(t.c.loan_id == loan_id, t.c.rule.in_(names))
                if shared is None:
                    rows.extend(conn.execute(mine).all())
                    continue
                ordered = sorted(shared)
                for start in range(0, len(ordered), 500):
                    part = ordered[start : start + 500]
                    rows.extend(conn.execute(mine.where(t.c.cause_key.in_(part))).all())
            self._reconcile(conn, loan_id, rows, runs, top, clock, result)
        return result

    def _slices(
        self,
        conn: sa.Connection,
        mirror: Mirror,
        loan_id: str,
        change: _Change,
        terms: TermsProvider,
        clock: int,
        tip: int,
    ) -> list[tuple[str, LoanFacts, set[str] | None]] | None:
        """(rule, the facts it is handed, the causes to reconcile: None for all of the loan's) for each
        rule, from the slices of the loan `change` can have affected; None if the loan is gone."""
        loan = mirror.loan(loan_id)
        if loan is None:
            return None
        th = self.thresholds
        loan_terms = terms(loan_id)
        records = mirror.records(loan_id, _RECORD_KINDS)

        def of_loan(rows: Iterable[Any]) -> dict[str, Any]:
            return {r.lot_id: r for r in rows if r.loan_id == loan_id}

        # The changed lots (those an undo removed are not found) and their ancestors.
        lots = of_loan(mirror.lots_by_id(change.lots).values()) if change.lots else {}
        frontier = {r.parent_lot_id for r in lots.values() if r.parent_lot_id} | change.parents
        for _ in range(th.circular_flow_hops + 2):
            frontier -= lots.keys()
            if not frontier:
                break
            found = of_loan(mirror.lots_by_id(frontier).values())
            lots.update(found)
            frontier = {r.parent_lot_id for r in found.values() if r.parent_lot_id}
        numbers: set[int | None] = {loan.block_number, tip}
        for kind in (
            records.repayments,
            records.collateral_valuations,
            records.inspections,
            records.restructurings,
        ):
            numbers.update(r.block_number for r in kind)
        for r in lots.values():
            numbers.update((r.block_number, r.confirmation_block))
        stamp = _stamps(mirror, numbers)
        now_at = stamp(tip) if tip >= 0 else clock

        # Disbursements whose pass-through window a changed lot falls in, with their payments in it. A lot
        # an undo removed was stamped after the new tip. (This slice, the near-threshold lots and the payees'
        # lots are what rules comparing with the terms read: without terms there is nothing to compare.)
        window = int(th.pass_through_hours * 3600)
        disbursements: dict[str, list[Any]] = {}
        for lot_id in change.lots if loan_terms is not None else ():
            lot = lots.get(lot_id)
            parent_id = lot.parent_lot_id if lot is not None else change.parent_of.get(lot_id)
            d = lot if lot is not None and lot.parent_lot_id is None else lots.get(parent_id or "")
            if d is None or d.parent_lot_id is not None or d.lot_id in disbursements:
                continue
            when = stamp(lot.block_number) if lot is not None else now_at
            if when - stamp(d.block_number) > window:
                continue
            last = mirror.last_block_by(stamp(d.block_number) + window, after=d.block_number, upto=tip)
            paid = (
                mirror.loan_lot_rows(loan_id, blocks=(d.block_number, last), parent=d.lot_id) if last else []
            )
            disbursements[d.lot_id] = [d, *paid]
        near: list[Any] = []
        near_made = False  # a lot just under the threshold was made (or removed): the groups may change
        threshold = loan_terms.approval_threshold if loan_terms is not None else None
        if threshold is not None:
            floor = threshold * (1 - th.structuring_margin)
            near_made = any(floor <= amount < threshold for amount in change.amounts.values())
            if near_made:
                near = list(mirror.loan_lot_rows(loan_id, amounts=(int(floor), threshold)))
        payees: dict[str, list[Any]] = {}
        for payee in sorted(change.payees) if loan_terms is not None else ():
            payees[payee] = list(mirror.loan_lot_rows(loan_id, holder=payee))
        extra = [r for rows in (*disbursements.values(), near, *payees.values()) for r in rows]
        for r in extra:
            numbers.update((r.block_number, r.confirmation_block))
        stamp = _stamps(mirror, numbers)

        rows_seen = [*lots.values(), *extra]
        signed = signers_of(conn, [r.transaction_hash for r in rows_seen if r.parent_lot_id is not None])
        base = _loan_facts(
            conn,
            mirror,
            loan,
            [],
            records,
            stamp,
            terms,
            clock,
            signed,
            penalty_rate_multiplier=self.thresholds.penalty_rate_multiplier,
        )

        def facts(rows: Iterable[Any]) -> LoanFacts:
            ordered = sorted(
                {r.lot_id: r for r in rows}.values(), key=lambda r: (r.block_number, r.log_index)
            )
            return replace(base, lots=[_lot_fact(r, stamp, signed) for r in ordered])

        slices: dict[Scope, tuple[LoanFacts, set[str] | None]] = {
            Scope.LOAN: (base, None),
            # A payment changes its parent too (remaining, answer): the parent's causes are re-checked.
            Scope.LOT: (facts(lots.values()), set(change.lots) | (change.parents & lots.keys())),
            Scope.DISBURSEMENT: (
                facts(r for rows in disbursements.values() for r in rows),
                {i for i in change.lots | change.parents if i in disbursements or i not in lots},
            ),
            Scope.NEAR_THRESHOLD: (facts(near), None if near_made else set()),
            Scope.PAYEE: (facts(r for rows in payees.values() for r in rows), set(change.payees)),
        }
        return [(name, *slices[RULE_SCOPES[name]]) for name in self.rules]

    def _evaluate_loan(
        self,
        conn: sa.Connection,
        loan_id: str,
        facts: LoanFacts | None,
        tip: int,
        clock: int,
        result: EvaluationResult,
    ) -> None:
        t = _alerts()
        rows = conn.execute(sa.select(t).where(t.c.loan_id == loan_id)).all()
        runs = [] if facts is None else [(name, facts, None) for name in self.rules]
        self._reconcile(conn, loan_id, rows, runs, tip, clock, result, gone=facts is None)

    def _reconcile(
        self,
        conn: sa.Connection,
        loan_id: str,
        rows: Sequence[Any],
        runs: Sequence[tuple[str, LoanFacts, set[str] | None]],
        tip: int,
        clock: int,
        result: EvaluationResult,
        *,
        gone: bool = False,
    ) -> None:
        """Bring the alerts `rows` in line with what each rule of `runs` says on its facts, for its causes
        (`keys`; None: all of the loan's): raise, refresh, resolve, reopen; delete those whose events are
        gone (all of them when the loan is `gone`)."""
        existing = self._drop_orphans(conn, rows, tip, result, gone=gone)
        if gone:
            return
        candidates: dict[tuple[str, str], Candidate] = {}
        evaluated: dict[str, set[str] | None] = {}
        for name, facts, keys in runs:
            if keys is not None and not keys:
                continue  # nothing of this rule's can have changed
            try:
                found = self.rules[name](facts, self.thresholds)
            except Exception as exc:  # one broken rule must not stop the mirror or clear its alerts
                log.exception("rule %s failed on loan %s", name, loan_id)
                result.failed_rules.append((name, f"{type(exc).__name__}: {exc}"))
                continue
            evaluated[name] = keys
            for c in found:
                if keys is None or c.cause_key in keys:  # context lots' causes are not this run's
                    candidates[(c.rule, c.cause_key)] = c
        self._apply(conn, existing, candidates, evaluated, clock, result)

    def _drop_orphans(
        self, conn: sa.Connection, rows: Sequence[Any], tip: int, result: EvaluationResult, *, gone: bool
    ) -> dict[tuple[str, str], Any]:
        """The alerts `rows` by (rule, cause), less those whose events are gone (deleted here): all of them
        when the subject is `gone`, else those resting on a block above `tip`."""
        existing = {(r.rule, r.cause_key): r for r in rows}
        orphaned = [r.id for r in existing.values() if gone or r.source_block > tip]
        if orphaned:
            self._delete(conn, orphaned)
            result.deleted.extend(orphaned)
            existing = {k: r for k, r in existing.items() if r.id not in orphaned}
        return existing

    def _apply(
        self,
        conn: sa.Connection,
        existing: Mapping[tuple[str, str], Any],
        candidates: Mapping[tuple[str, str], Candidate],
        evaluated: Mapping[str, set[str] | None],
        clock: int,
        result: EvaluationResult,
    ) -> None:
        """Raise, refresh or reopen the alerts of `candidates`; resolve as system those of the `evaluated`
        rules (within their cause keys, when given) whose cause went away."""
        t = _alerts()
        now = datetime.now(UTC)
        for key, c in candidates.items():
            row = existing.get(key)
            if row is None:
                alert_id = self._insert(conn, c, clock, now)
                result.raised.append(alert_id)
                continue
            changes = {
                name: value
                for name, value in _row_values(c).items()
                if name in _REFRESHED and getattr(row, name) != value
            }
            if row.state == "resolved" and row.resolved_by == SYSTEM:
                changes.update(
                    state="acknowledged" if row.acknowledged_at is not None else "open",
                    resolved_by=None,
                    resolved_at=None,
                    resolution_note=None,
                )
                result.reopened.append(row.id)
            if changes:
                changes["updated_at"] = now
                conn.execute(sa.update(t).where(t.c.id == row.id).values(**changes))
                if row.id not in result.reopened:
                    result.updated.append(row.id)
        for key, row in existing.items():
            if key in candidates or row.rule not in evaluated or row.state == "resolved":
                continue
            keys = evaluated[row.rule]
            if keys is not None and row.cause_key not in keys:
                continue
            conn.execute(
                sa.update(t)
                .where(t.c.id == row.id)
                .values(
                    state="resolved",
                    resolved_by=SYSTEM,
                    resolved_at=now,
                    resolution_note="the cause no longer holds (re-checked at chain time "
                    f"{datetime.fromtimestamp(clock, UTC):%Y-%m-%d %H:%M UTC})",
                    updated_at=now,
                )
            )
            result.cleared.append(row.id)

    def _insert(self, conn: sa.Connection, c: Candidate, clock: int, now: datetime) -> int:
        t = _alerts()
        values = {
            **_row_values(c),
            "state": "open",
            "raised_at": now,
            "raised_chain_time": clock,
            "updated_at": now,
        }
        alert_id = int(conn.execute(sa.insert(t).values(**values).returning(t.c.id)).scalar_one())
        if self.webhook_urls:
            row = conn.execute(sa.select(t).where(t.c.id == alert_id)).one()
            payload = alert_payload(row)
            conn.execute(
                sa.insert(_deliveries()),
                [
                    {
                        "delivery_id": str(uuid.uuid4()),
                        "alert_id": alert_id,
                        "url": url,
                        "event": "alert.raised",
                        "payload": payload,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for url in self.webhook_urls
                ],
            )
        return alert_id

    def _delete(self, conn: sa.Connection, ids: list[int]) -> None:
        d = _deliveries()
        conn.execute(sa.delete(d).where(d.c.alert_id.in_(ids), d.c.state == "pending"))
        conn.execute(sa.delete(_alerts()).where(_alerts().c.id.in_(ids)))


# Events that change what the rules see only through the lots they add or answer for, or through the loan's
# records and totals (which the rules of `Scope.LOAN` read whole every time). Any other event of a loan (an
# opening, a closing, a restructuring that may bring new terms, a kind this module does not know) has the
# loan evaluated whole.
_LOT_EVENTS = frozenset({"Disbursed", "Paid", "LotConfirmed", "LotDisputed"})
_RECORD_EVENTS = frozenset(
    {"Repaid", "RiskClassified", "CollateralValued", "InspectionRecorded", "TrailAttested", "RecordFiled"}
)


@dataclass
class _Change:
    """What a batch's (or an undo's) events did to one loan, as the rules' scopes need it."""

    whole: bool = False
    lots: set[str] = field(default_factory=set)  # lots made or answered for
    parents: set[str] = field(default_factory=set)  # lots paid out of
    parent_of: dict[str, str] = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)  # new lot -> amount
    payees: set[str] = field(default_factory=set)


def _changes(events: Iterable[DecodedEvent]) -> dict[str, _Change]:
    out: dict[str, _Change] = {}
    for event in events:
        args = event.args
        loan_id = args.get("loanId")
        if loan_id is None:
            continue
        change = out.setdefault(loan_id, _Change())
        if event.name in _LOT_EVENTS:
            change.lots.add(args["lotId"])
            if event.name in ("Disbursed", "Paid"):
                change.amounts[args["lotId"]] = int(args["amount"])
                change.payees.add(args["payee"])
            if event.name == "Paid":
                change.parents.add(args["parentLotId"])
                change.parent_of[args["lotId"]] = args["parentLotId"]
        elif event.name not in _RECORD_EVENTS:
            change.whole = True
    return out


def _row_values(c: Candidate) -> dict[str, Any]:
    return {
        "rule": c.rule,
        "severity": str(c.severity),
        "loan_id": c.loan_id,
        "cause_key": c.cause_key,
        "title": c.title[:300],
        "explanation": c.explanation,
        "lot_ids": list(c.lot_ids),
        "details": c.details,
        "source_block": c.source_block,
    }
