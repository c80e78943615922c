"""Auditors' attestations of a loan's trail: listed for whoever sees the loan; attesting verifies first
(`ledger.audit.attestation.attest_verified`): a trail that fails verification, or grew after the block
verified at, is refused (409 AttestationRefused) and nothing is sent."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.schemas import AttestRequest
from api.services.access import loan_for, resolve_loan_id
from api.services.audit import verify
from api.services.rows import records
from api.writes import Outcome, Write
from ledger.audit.attestation import attest_verified
from ledger.chain.contract import LedgerContract

__all__ = ["attest", "list_attestations"]


def list_attestations(session: Session, caller: Caller, loan: str) -> list[dict[str, Any]]:
    return records(session, "attestations", loan_for(session, caller, loan, "loan.attestations").loan_id)


def attest(session: Session, write: Write, loan: str, body: AttestRequest) -> JSONResponse:
    caller, services = write.caller, write.services
    policy.require(caller, "loan.attest")  # auditors, on any loan
    loan_id = resolve_loan_id(session, loan, write.caller)

    def action(ledger: LedgerContract) -> Outcome:
        result = verify(services, loan_id)
        signer = caller.signer()
        stale = body.head is not None and body.head.lower() != result.head_on_chain
        if stale and result.ok and not result.trail_grew_since:
            # A head that is neither the verified one nor the current one (equal here): the contract
            # refuses it with LedgerStaleHead naming both heads, and nothing is recorded.
            tx = ledger.attest(signer, loan_id=loan_id, head=str(body.head), report_hash=body.report_hash)
        else:
            tx = attest_verified(result, ledger, signer, report_hash=body.report_hash)
        return Outcome(tx, {"loan_id": loan_id})

    return write.record(body, action, path=f"/v1/loans/{loan_id}/attestations")
