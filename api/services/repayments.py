"""Repayments of a loan: listed for whoever sees the loan, recorded by its lender.

A repayment is one amount; the API applies it from the loan's schedule (`ledger.protocol.servicing`): what is
due is paid in the configured order (`FUNDFLOW_REPAYMENT_ALLOCATION_ORDER`, default penalty, interest,
principal), the rest pays principal ahead of schedule, and the split goes on chain (`repayAllocated`) so the
mirror and an auditor see the same split. A loan whose terms hold no interest schedule owes no interest the
product knows of: the whole amount is principal. More than is outstanding is refused by the contract
(`LedgerRepaymentExceedsOutstanding`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api.deps import Caller
from api.schemas import RepayRequest
from api.services import Services
from api.services.access import check_lender, loan_for, resolve_loan_id
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import ConflictError
from ledger.mirror.read import Mirror
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import servicing_position
from ledger.protocol.servicing import Allocation, allocate

__all__ = ["list_repayments", "plan_repayment", "repay"]


def list_repayments(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    return records(session, "repayments", loan_for(session, caller, loan, "loan.repayments").loan_id)


def plan_repayment(session: Session, services: Services, loan_id: str, amount: int, now: int) -> Allocation:
    """How `amount` is applied on the chain date of `now` (a block timestamp)."""
    monitor = Monitor.from_settings(services.settings)
    facts = monitor.facts(session.connection(), loan_id, now=now)
    if facts is None:
        return Allocation(amount, 0, 0, amount)
    pos = servicing_position(facts, datetime.fromtimestamp(now, UTC).date())
    if pos is None:
        return Allocation(amount, 0, 0, amount)
    if facts.terms is not None and facts.terms.interest is not None:
        # The split is worked out from the mirror: it must have seen the loan's every change (an earlier
        # repayment not mirrored yet would be asked for again).
        mirrored = Mirror(session).loan(loan_id)
        if mirrored is None or mirrored.head.lower() != services.ledger.head_of(loan_id).lower():
            raise ConflictError(
                f"loan {loan_id} changed on chain after the mirror's last view of it, so what is due cannot "
                "be worked out yet",
                hint="retry in a moment (send the previous write with ?wait=true to wait for the mirror)",
            )
    order = services.settings.repayment_allocation_order
    owed = pos.penalty_due + pos.interest_due + facts.outstanding
    if amount > owed:  # the contract refuses the excess principal, naming what is outstanding
        return Allocation(amount - pos.penalty_due - pos.interest_due, pos.interest_due, pos.penalty_due, 0)
    return allocate(amount, pos, facts.outstanding, order)


def repay(session: Session, write: Write, loan: str, body: RepayRequest) -> JSONResponse:
    caller, services = write.caller, write.services
    loan_id = resolve_loan_id(session, loan, write.caller)
    check_lender(session, caller, loan_id, "loan.repay")
    now = services.client.get_header().timestamp  # the chain date the repayment is applied on
    split = plan_repayment(session, services, loan_id, body.amount, int(now))

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.repay_allocated(
            caller.signer(),
            loan_id=loan_id,
            principal=split.principal,
            interest=split.interest,
            penalty=split.penalty,
            evidence_hash=body.evidence_hash,
        )
        return Outcome(
            tx,
            {
                "loan_id": loan_id,
                "principal": split.principal,
                "interest": split.interest,
                "penalty": split.penalty,
                "prepaid_principal": split.prepaid_principal,
            },
        )

    return write.record(body, action, path=f"/v1/loans/{loan_id}/repayments")
