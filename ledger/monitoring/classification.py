"""Five-category loan classification (五级分类): a suggestion from the mirror, and applying a class on chain.

The suggestion follows the common regulatory floors: any amount past due is at least 关注 (special mention),
more than 90 days at least 次级 (substandard), more than 270 days at least 可疑 (doubtful), more than 360 days
损失 (loss). Open high/critical alerts (misused funds, money flowing back, disputes) and collateral below the
required cover make a loan at least 关注; past due beyond 90 days with collateral short of cover goes one
class further. A written-off loan is 损失, a repaid one 正常.

Applying a class that differs from the suggestion needs a written reason. The reason text is kept off chain
(`classification_reasons`), its keccak256 goes on chain as the `reasonHash`, so the lender's words can later
be proved to be the ones it committed to. The row is written before the transaction is sent, so a crash in
between leaves a reason without a transaction, never a hash without its text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import sqlalchemy as sa
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from ledger.chain.client import TxResult
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError, ValidationError
from ledger.monitoring.alerts import Alert
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import (
    LOAN_WRITTEN_OFF,
    LoanFacts,
    Severity,
    Thresholds,
    cover_items,
    days_past_due,
)
from ledger.protocol.codes import LoanStatus, RiskClass

__all__ = [
    "CLASS_LABELS",
    "AppliedClassification",
    "ClassificationReason",
    "Suggestion",
    "apply_classification",
    "reason_hash",
    "suggest",
    "suggest_classification",
]

CLASS_LABELS = {c: f"{c.zh} ({c.en})" for c in RiskClass}
LOAN_REPAID = LoanStatus.REPAID


class ClassificationReason(SQLModel, table=True):
    """The written reason behind a class applied on chain; `reason_hash` = keccak256(UTF-8 reason)."""

    __tablename__ = "classification_reasons"

    id: int | None = Field(default=None, primary_key=True)
    loan_id: str = Field(sa_type=sa.String(66), index=True)
    risk_class: int
    suggested_class: int
    reason: str = Field(sa_type=sa.Text)
    reason_hash: str = Field(sa_type=sa.String(66), index=True)
    applied_by: str = Field(sa_type=sa.String(200))
    created_at: datetime = Field(sa_type=sa.DateTime(timezone=True))
    transaction_hash: str | None = Field(default=None, sa_type=sa.String(66))


@dataclass(frozen=True)
class Suggestion:
    loan_id: str
    risk_class: RiskClass
    reasons: list[str]
    days_past_due: int
    collateral_cover: Decimal | None
    open_alert_ids: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return CLASS_LABELS[self.risk_class]

    def text(self) -> str:
        """The suggestion as a reason text (what is hashed when the lender follows it)."""
        return f"Suggested {self.label}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class AppliedClassification:
    loan_id: str
    risk_class: RiskClass
    suggested: RiskClass
    reason: str
    reason_hash: str
    transaction_hash: str
    tx: TxResult | None = None


def reason_hash(reason: str) -> str:
    return "0x" + keccak(reason.encode("utf-8")).hex()


def _cover(facts: LoanFacts) -> Decimal | None:
    if facts.outstanding <= 0:
        return None
    # the register's effective value (haircuts, released items left out), as the collateral_cover rule
    value = sum(i.effective for i in cover_items(facts, Thresholds()))
    return Decimal(value) / Decimal(facts.outstanding)


def suggest(facts: LoanFacts, alerts: list[Alert]) -> Suggestion:
    """The suggested class and why, from days past due, the loan's unresolved alerts and collateral cover."""
    cover = _cover(facts)
    if facts.status == LOAN_WRITTEN_OFF:
        return Suggestion(facts.loan_id, RiskClass.LOSS, ["the loan was written off"], 0, cover)
    if facts.status == LOAN_REPAID:
        return Suggestion(facts.loan_id, RiskClass.NORMAL, ["the loan is repaid and closed"], 0, cover)
    dpd = days_past_due(facts)
    cls = RiskClass.NORMAL
    reasons: list[str] = []
    if dpd > 360:
        cls = RiskClass.LOSS
    elif dpd > 270:
        cls = RiskClass.DOUBTFUL
    elif dpd > 90:
        cls = RiskClass.SUBSTANDARD
    elif dpd > 0:
        cls = RiskClass.SPECIAL_MENTION
    if dpd > 0:
        reasons.append(f"{dpd} day(s) past due")
    serious = [a for a in alerts if Severity(a.severity).rank >= Severity.HIGH.rank]
    if serious:
        cls = max(cls, RiskClass.SPECIAL_MENTION)
        for a in sorted(serious, key=lambda a: (-Severity(a.severity).rank, a.id or 0)):
            reasons.append(f"unresolved {a.severity} alert #{a.id}: {a.title}")
    required = facts.terms.required_collateral_cover if facts.terms is not None else None
    if required is not None and cover is not None and cover < required:
        cls = max(cls, RiskClass.SPECIAL_MENTION)
        reasons.append(f"collateral cover {cover:.2f}× below the required {required}×")
        if dpd > 90 and cls < RiskClass.LOSS:
            cls = RiskClass(cls + 1)
            reasons.append("past due over 90 days without full collateral cover")
    if not reasons:
        reasons.append("repayments on schedule, no unresolved high-severity alerts, collateral cover met")
    return Suggestion(facts.loan_id, cls, reasons, dpd, cover, [a.id for a in serious if a.id is not None])


def suggest_classification(conn: sa.Connection, loan_id: str, monitor: Monitor | None = None) -> Suggestion:
    """The suggestion for one mirrored loan (chain time = newest mirrored block unless `monitor` says)."""
    monitor = monitor or Monitor()
    facts = monitor.facts(conn, loan_id)
    if facts is None:
        raise NotFoundError(f"loan {loan_id} is not in the mirror")
    t = Alert.__table__  # type: ignore[attr-defined]
    rows = conn.execute(sa.select(t).where(t.c.loan_id == loan_id, t.c.state != "resolved")).all()
    return suggest(facts, [Alert.model_validate(dict(r._mapping)) for r in rows])


def apply_classification(
    engine: Engine,
    ledger: LedgerContract,
    lender: LocalAccount,
    *,
    loan_id: str,
    risk_class: RiskClass | int,
    reason: str | None,
    applied_by: str,
    monitor: Monitor | None = None,
) -> AppliedClassification:
    """Set the loan's class on chain. A class other than the suggestion needs `reason`; following the
    suggestion without one records the suggestion's own reasons."""
    cls = RiskClass(int(risk_class))
    with engine.connect() as conn:
        suggestion = suggest_classification(conn, loan_id, monitor)
    text = (reason or "").strip()
    if cls != suggestion.risk_class and not text:
        raise ValidationError(
            f"classifying loan {loan_id} as {CLASS_LABELS[cls]} differs from the suggested "
            f"{suggestion.label} ({'; '.join(suggestion.reasons)}): a written reason is required",
            hint="give the reason for departing from the suggestion",
        )
    if not text:
        text = suggestion.text()
    digest = reason_hash(text)
    table = ClassificationReason.__table__  # type: ignore[attr-defined]
    with engine.begin() as conn:
        row_id = conn.execute(
            sa.insert(table)
            .values(
                loan_id=loan_id,
                risk_class=int(cls),
                suggested_class=int(suggestion.risk_class),
                reason=text,
                reason_hash=digest,
                applied_by=applied_by,
                created_at=datetime.now(UTC),
            )
            .returning(table.c.id)
        ).scalar_one()
    result = ledger.classify(lender, loan_id=loan_id, risk_class=int(cls), reason_hash=digest)
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == row_id).values(transaction_hash=result.tx_hash))
    return AppliedClassification(loan_id, cls, suggestion.risk_class, text, digest, result.tx_hash, result)
