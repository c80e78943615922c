"""Five-category risk classification (五级分类): a loan's classifications, the suggested class with the named
criteria behind it, and the one way a class changes: maker-checker.

A lender account proposes a class with a written reason (`propose`); a second lender account of the same bank
approves it (`approve`), which sends `classify` on chain from the approver's account with keccak256 of the
reason. A class better than the rules' floor is refused at both steps, naming the criterion. In `dev`,
`FUNDFLOW_CLASSIFICATION_SINGLE_PERSON` lets one account approve its own proposal (never elsewhere).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.schemas import ClassificationProposalRequest
from api.services import Services
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import NotFoundError
from ledger.monitoring.classification import (
    CLASS_LABELS,
    ClassificationProposal,
    Suggestion,
    approve_classification,
    propose_classification,
    reject_classification,
    suggest_classification,
)
from ledger.monitoring.monitor import Monitor
from ledger.protocol.codes import RiskClass

__all__ = [
    "approve",
    "list_classifications",
    "list_proposals",
    "propose",
    "reject",
    "suggestion",
    "suggestion_out",
]


def _monitor(services: Services) -> Monitor:
    return Monitor.from_settings(services.settings)


def list_classifications(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    return records(session, "classifications", loan_for(session, caller, loan, "loan.risk_class").loan_id)


def suggestion_out(s: Suggestion, current_class: int) -> dict[str, Any]:
    """The suggestion as the API and the dashboard show it (dates ISO 8601)."""
    obs = s.observation
    return {
        "loan_id": s.loan_id,
        "risk_class": int(s.risk_class),
        "label": CLASS_LABELS[s.risk_class],
        "current_class": current_class,
        "reasons": s.reasons,
        "days_past_due": s.days_past_due,
        "collateral_cover": None if s.collateral_cover is None else str(round(s.collateral_cover, 4)),
        "open_alert_ids": s.open_alert_ids,
        # issue 18
        "floor_class": int(s.floor),
        "floor_label": CLASS_LABELS[s.floor],
        "criteria": [
            {
                "code": c.code,
                "kind": c.kind,
                "risk_class": int(c.risk_class),
                "label": CLASS_LABELS[c.risk_class],
                "text": c.text,
                "text_zh": c.text_zh,
            }
            for c in s.criteria
        ],
        "past_due_since": s.past_due_since.isoformat() if s.past_due_since else None,
        "past_due_what": s.past_due_what or None,
        "debtor_days_past_due": s.debtor_days_past_due,
        "debtor_past_due_since": s.debtor_past_due_since.isoformat() if s.debtor_past_due_since else None,
        "retail": s.retail,
        "observation": None
        if obs is None
        else {
            "restructured_on": obs.restructured_on.isoformat(),
            "start": obs.start.isoformat() if obs.start else None,
            "earliest_end": obs.earliest_end.isoformat() if obs.earliest_end else None,
            "restarted": obs.restarted,
            "ended": obs.ended,
            "non_performing_at_restructuring": obs.non_performing_at_restructuring,
        },
        "cured": s.cured,
        "cure_missing": s.cure_missing,
        "unchecked": s.unchecked,
    }


def suggestion(session: Session, services: Services, caller: Caller, loan: str) -> dict[str, Any]:
    """The suggested class and why (lenders and auditors who see the loan)."""
    row = loan_for(session, caller, loan, "loan.suggestion")
    s = suggest_classification(session.connection(), row.loan_id, _monitor(services))
    return suggestion_out(s, int(row.risk_class))


def _proposal_out(p: ClassificationProposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "loan_id": p.loan_id,
        "risk_class": p.risk_class,
        "label": CLASS_LABELS[RiskClass(p.risk_class)],
        "suggested_class": p.suggested_class,
        "floor_class": p.floor_class,
        "reason": p.reason,
        "capacity_assessed": p.capacity_assessed,
        "state": p.state,
        "proposed_by": p.proposed_by,
        "proposed_by_name": p.proposed_by_name,
        "proposed_at": p.proposed_at.isoformat(),
        "decided_by": p.decided_by,
        "decided_at": p.decided_at.isoformat() if p.decided_at else None,
        "reason_hash": p.reason_hash,
        "transaction_hash": p.transaction_hash,
    }


def propose(
    session: Session, services: Services, caller: Caller, loan: str, body: ClassificationProposalRequest
) -> dict[str, Any]:
    """Propose a class change with a written reason (a lender account of the loan's bank)."""
    loan_id = resolve_loan_id(session, loan, caller)
    check_lender(session, caller, loan_id, "loan.classify")
    session.close()  # the proposal is written on its own connection
    p = propose_classification(
        services.engine,
        loan_id=loan_id,
        risk_class=body.risk_class,
        reason=body.reason,
        proposed_by=caller.address,
        proposed_by_name=caller.name,
        capacity_assessed=body.capacity_assessed,
        impaired=body.credit_impaired,
        monitor=_monitor(services),
    )
    return _proposal_out(p)


def _proposal_row(session: Session, caller: Caller, proposal_id: int) -> ClassificationProposal:
    """The proposal, if it belongs to the caller's bank (404 otherwise: another bank's proposals are not
    theirs to see)."""
    t = ClassificationProposal.__table__  # type: ignore[attr-defined]
    row = session.execute(sa.select(t).where(t.c.id == proposal_id)).first()
    if row is None or row.lender_org != caller.org_id:
        raise NotFoundError(f"classification proposal {proposal_id} does not exist")
    return ClassificationProposal.model_validate(dict(row._mapping))


def list_proposals(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    """A loan's classification proposals, newest first (lenders of the loan's bank)."""
    row = loan_for(session, caller, loan, "loan.classification_proposals")
    t = ClassificationProposal.__table__  # type: ignore[attr-defined]
    rows = session.execute(
        sa.select(t)
        .where(t.c.loan_id == row.loan_id, t.c.lender_org == caller.org_id)
        .order_by(t.c.id.desc())
    )
    return [_proposal_out(ClassificationProposal.model_validate(dict(r._mapping))) for r in rows]


def approve(session: Session, write: Write, proposal_id: int) -> JSONResponse:
    """Approve a proposal (a second lender account of the same bank) and send the class on chain."""
    caller, services = write.caller, write.services
    policy.require_role(caller, "loan.classify")
    p = _proposal_row(session, caller, proposal_id)
    check_lender(session, caller, p.loan_id, "loan.classify")

    def action(ledger: LedgerContract) -> Outcome:
        applied = approve_classification(
            services.engine,
            ledger,
            caller.signer(),
            proposal_id=proposal_id,
            approver_org=caller.org_id,
            approved_by_name=caller.name,
            single_person=services.settings.classification_single_person,
            monitor=_monitor(services),
        )
        assert applied.tx is not None
        return Outcome(
            applied.tx,
            {
                "loan_id": applied.loan_id,
                "proposal_id": proposal_id,
                "risk_class": int(applied.risk_class),
                "suggested_class": int(applied.suggested),
                "reason_hash": applied.reason_hash,
            },
        )

    return write.record(None, action, path=f"/v1/classification-proposals/{proposal_id}/approve")


def reject(session: Session, services: Services, caller: Caller, proposal_id: int) -> dict[str, Any]:
    """Reject (or, by its proposer, withdraw) a proposal."""
    policy.require_role(caller, "loan.classify")
    p = _proposal_row(session, caller, proposal_id)
    check_lender(session, caller, p.loan_id, "loan.classify")
    session.close()
    done = reject_classification(
        services.engine, proposal_id=proposal_id, rejecter=caller.address, rejecter_org=caller.org_id
    )
    return _proposal_out(done)
