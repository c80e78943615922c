"""The monitor: keeps the `alerts` table equal to what the rules say about the mirrored loans.

The indexer calls `Monitor.after_batch(conn, loan_ids)` inside the transaction of every batch and of every
reorg undo, so alerts commit (or roll back) with the rows they rest on. For each affected loan the monitor

- deletes alerts whose events are gone (loan gone, or `source_block` above the newest block still mirrored),
- inserts an open alert (and its webhook outbox rows) for each new cause,
- refreshes the wording of alerts whose cause persists, leaving their lifecycle alone,
- resolves as `system` the open/acknowledged alerts whose cause went away, and reopens a system-resolved
  alert whose cause is back. A person's resolution stands.

Time-based rules (unconfirmed payments, lateness, stale valuations, inspections) also change as the chain's
clock moves, so every `sweep_seconds` of chain time the monitor re-checks all open loans.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from ledger.config import Settings
from ledger.mirror.read import Mirror
from ledger.monitoring.alerts import SYSTEM, Alert, WebhookDelivery, alert_payload
from ledger.monitoring.rules import (
    RULES,
    Candidate,
    LoanFacts,
    LotFact,
    RecordFact,
    Rule,
    TermsChangeFact,
    Thresholds,
)
from ledger.protocol.codes import LoanStatus
from ledger.protocol.terms import TermsProvider
from ledger.store.offchain import db_terms_provider

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
    penalty_rate_multiplier: Decimal = Decimal("1.5"),
) -> LoanFacts | None:
    """One loan's facts from the mirror, with block timestamps; None when the loan is not (any more) there."""
    mirror = Mirror(conn)
    loan = mirror.loan(loan_id)
    if loan is None:
        return None
    lots = mirror.lots(loan_id)
    records = mirror.records(
        loan_id, ("repayments", "collateral_valuations", "inspections", "restructurings", "classifications")
    )
    numbers = {loan.block_number}
    numbers.update(lot.block_number for lot in lots)
    numbers.update(lot.confirmation_block for lot in lots if lot.confirmation_block is not None)
    numbers.update(r.block_number for r in records.repayments)
    numbers.update(r.block_number for r in records.collateral_valuations)
    numbers.update(r.block_number for r in records.inspections)
    numbers.update(r.block_number for r in records.restructurings)
    stamps = mirror.block_times(numbers)

    def stamp(number: int) -> int:
        if number not in stamps:
            raise LookupError(f"block {number} is not in the mirror")
        return stamps[number]

    return LoanFacts(
        loan_id=loan_id,
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
        lots=[
            LotFact(
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
            )
            for lot in lots
        ],
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
        ],
        inspections=[
            RecordFact(r.block_number, r.log_index, stamp(r.block_number), 0, str(r.kind))
            for r in records.inspections
        ],
        terms=terms(loan_id),
        now=now,
        risk_class=int(loan.risk_class),
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

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Monitor:
        return cls(
            Thresholds.from_settings(settings),
            webhook_urls=settings.webhook_urls,
            sweep_seconds=settings.monitor_sweep_hours * 3600,
            **kwargs,
        )

    # ------------------------------------------------------------------ indexer hook

    def after_batch(self, conn: sa.Connection, loan_ids: Iterable[str]) -> EvaluationResult:
        """The indexer's callback: re-evaluate the loans a batch (or a reorg undo) touched, plus every open
        loan when a sweep is due."""
        now = self._clock(conn)
        ids = set(loan_ids)
        if now is not None and (self._last_sweep is None or now - self._last_sweep >= self.sweep_seconds):
            ids.update(Mirror(conn).loan_ids(status=LoanStatus.OPEN))
            self._last_sweep = now
        return self.evaluate(conn, ids, now=now)

    def _clock(self, conn: sa.Connection) -> int | None:
        return self.now() if self.now is not None else latest_chain_time(conn)

    # ------------------------------------------------------------------ evaluation

    def facts(self, conn: sa.Connection, loan_id: str, *, now: int | None = None) -> LoanFacts | None:
        clock = now if now is not None else self._clock(conn)
        terms = self.terms or db_terms_provider(conn)
        return load_facts(conn, loan_id, terms, clock or 0, self.thresholds.penalty_rate_multiplier)

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
            facts = load_facts(conn, loan_id, terms, clock)
            self._evaluate_loan(conn, loan_id, facts, -1 if tip is None else int(tip), clock, result)
        return result

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
        existing = {
            (r.rule, r.cause_key): r for r in conn.execute(sa.select(t).where(t.c.loan_id == loan_id)).all()
        }
        orphaned = [r.id for r in existing.values() if facts is None or r.source_block > tip]
        if orphaned:
            self._delete(conn, orphaned)
            result.deleted.extend(orphaned)
            existing = {k: r for k, r in existing.items() if r.id not in orphaned}
        if facts is None:
            return
        candidates: dict[tuple[str, str], Candidate] = {}
        evaluated: set[str] = set()
        for name, rule in self.rules.items():
            try:
                found = rule(facts, self.thresholds)
            except Exception as exc:  # one broken rule must not stop the mirror or clear its alerts
                log.exception("rule %s failed on loan %s", name, loan_id)
                result.failed_rules.append((name, f"{type(exc).__name__}: {exc}"))
                continue
            evaluated.add(name)
            for c in found:
                candidates[(c.rule, c.cause_key)] = c
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
