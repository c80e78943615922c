"""Five-category risk classification (五级分类): a loan's classifications, the suggested class with its
reasons, and classifying a loan (its lender).

`classify` is the one way a class is applied, whichever route asks:
- with a written reason (`ClassificationWithReason`): the class is checked against the suggestion, a
  departure needs the reason, the text is kept off chain and its keccak256 goes on chain;
- with a bare reason hash (`ClassifyRequest`): sent as given, without the suggestion check. This is the
  older route's behaviour, kept until it is closed (issue 18).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.schemas import ClassificationWithReason, ClassifyRequest
from api.services import Services
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.monitoring.classification import CLASS_LABELS, apply_classification, suggest_classification
from ledger.monitoring.monitor import Monitor

__all__ = ["classify", "list_classifications", "suggestion"]


def _monitor(services: Services) -> Monitor:
    return Monitor.from_settings(services.settings)


def list_classifications(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    return records(session, "classifications", loan_for(session, caller, loan, "loan.risk_class").loan_id)


def suggestion(session: Session, services: Services, caller: Caller, loan: str) -> dict[str, Any]:
    """The suggested class and why (lenders and auditors who see the loan)."""
    row = loan_for(session, caller, loan, "loan.suggestion")
    s = suggest_classification(session.connection(), row.loan_id, _monitor(services))
    return {
        "loan_id": s.loan_id,
        "risk_class": int(s.risk_class),
        "label": CLASS_LABELS[s.risk_class],
        "current_class": int(row.risk_class),
        "reasons": s.reasons,
        "days_past_due": s.days_past_due,
        "collateral_cover": None if s.collateral_cover is None else str(round(s.collateral_cover, 4)),
        "open_alert_ids": s.open_alert_ids,
    }


def classify(
    session: Session, write: Write, loan: str, body: ClassificationWithReason | ClassifyRequest
) -> JSONResponse:
    """Apply a class to a loan (its lender); see the module docstring for the two kinds of body."""
    caller, services = write.caller, write.services
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.classify")

    if isinstance(body, ClassifyRequest):
        reason_hash = body.reason_hash

        def send_hash(ledger: LedgerContract) -> Outcome:
            tx = ledger.classify(
                caller.signer(), loan_id=loan_id, risk_class=body.risk_class, reason_hash=reason_hash
            )
            return Outcome(tx, {"loan_id": loan_id})

        return write.record(body, send_hash, path=f"/v1/loans/{loan_id}/classifications")

    reason = body.reason

    def apply_with_reason(ledger: LedgerContract) -> Outcome:
        applied = apply_classification(
            services.engine,
            ledger,
            caller.signer(),
            loan_id=loan_id,
            risk_class=body.risk_class,
            reason=reason,
            applied_by=f"{caller.name} ({caller.address})",
            monitor=_monitor(services),
        )
        assert applied.tx is not None
        return Outcome(
            applied.tx,
            {
                "loan_id": loan_id,
                "risk_class": int(applied.risk_class),
                "suggested_class": int(applied.suggested),
                "reason_hash": applied.reason_hash,
            },
        )

    return write.record(body, apply_with_reason, path=f"/v1/loans/{loan_id}/classification")
