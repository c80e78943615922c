"""Lots: one lot as its holder, payer or overseer sees it; the payee confirms receipt (收款确认) or
disputes a payment."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.schemas import ConfirmRequest, DisputeRequest
from api.services import Services, documents
from api.services.access import find_lot, resolve_loan_id, visible_lot
from api.services.rows import account_names, lot_out
from api.writes import Outcome, Write
from ledger.chain.contract import LedgerContract
from ledger.errors import ContractRevertError, NotFoundError, PermissionDeniedError
from ledger.protocol.canonical import canonical_json

__all__ = ["confirm", "dispute", "get_lot"]


def get_lot(session: Session, services: Services, caller: Caller, lot_id: str) -> dict[str, Any]:
    policy.require_role(caller, "lot.read")  # a third party is refused by role, before any lookup
    lot, _ = visible_lot(session, caller, lot_id)
    return lot_out(lot, account_names(services))


def _payee_loan(session: Session, caller: Caller, lot_id: str, loan: str | None, action: str) -> str:
    """The lot's loan id; refuses (403) when the mirror shows the caller is not the payee."""
    policy.require(caller, "lot.confirm" if action.startswith("confirm") else "lot.dispute")
    row = find_lot(session, lot_id)
    if row is None:
        if loan is None:
            raise NotFoundError(
                f"Lot {lot_id} is not mirrored yet.",
                hint="Pass `loan` in the body, or retry with ?wait=true writes.",
            )
        return resolve_loan_id(session, loan, caller)
    if row.holder not in caller.org_accounts:
        raise PermissionDeniedError(
            f"Only the payee of a payment can {action}; this lot was paid to another organisation.",
            hint="Use the token of the organisation that received the payment.",
        )
    return str(row.loan_id)


def _refuse_repeated_answer(session: Session, loan_id: str, lot_id: str, answer: str) -> None:
    """Refuses (409) without a transaction an answer the mirror shows the contract would refuse, with the
    contract's own error: nothing follows a confirmation, and a payment is disputed once. A mirror that lags
    lets the request through, and the contract refuses it with the same error."""
    row = find_lot(session, lot_id)
    if row is None or row.confirmation not in ("confirmed", answer):
        return
    error = "LedgerLotAlreadyConfirmed" if row.confirmation == "confirmed" else "LedgerLotAlreadyDisputed"
    args = {"loanId": loan_id.lower(), "lotId": lot_id.lower()}
    listed = ", ".join(f"{name}={value}" for name, value in args.items())
    raise ContractRevertError(
        error,
        args,
        message=f"{error}({listed}): the mirror shows the payment {row.confirmation} in block "
        f"{row.confirmation_block}; nothing was sent",
    )


def statement(services: Services, caller: Caller, kind: str, text: str, evidence_hash: str | None) -> str:
    """Keep a payee's words off chain and answer the hash that goes on chain. Text alone is kept as a UTF-8
    document (its keccak256 is the hash); text with an evidence document is kept as a small JSON statement
    naming both, so one on-chain hash commits to the words and the file."""
    if evidence_hash is None or int(evidence_hash, 16) == 0:
        data, media = text.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        data = canonical_json({"kind": kind, "text": text, "evidence_hash": evidence_hash.lower()})
        media = "application/json"
    return str(
        documents.store(services, caller, data, media, f"{kind}.{'json' if media[0] == 'a' else 'txt'}")[
            "hash"
        ]
    )


def confirm(session: Session, write: Write, lot_id: str, body: ConfirmRequest) -> JSONResponse:
    """Confirm receipt of a payment (its payee), once; a confirmation withdraws an earlier dispute."""
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "confirm payments")
    evidence = body.evidence_hash
    if body.note is not None:
        evidence = statement(write.services, caller, "confirmation", body.note, body.evidence_hash)

    def action(ledger: LedgerContract) -> Outcome:
        # Checked here, not before: a retry with the key of a confirmation that went through replays it.
        _refuse_repeated_answer(session, loan_id, lot_id, "confirmed")
        tx = ledger.confirm_lot(caller.signer(), loan_id=loan_id, lot_id=lot_id, evidence_hash=evidence)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)


def dispute(session: Session, write: Write, lot_id: str, body: DisputeRequest) -> JSONResponse:
    """Dispute a payment (its payee), once and before confirming it."""
    caller = write.caller
    loan_id = _payee_loan(session, caller, lot_id, body.loan, "dispute payments")
    reason = body.reason_hash
    if body.reason is not None:  # the text stays off chain, its hash goes on chain
        reason = statement(write.services, caller, "dispute", body.reason, body.evidence_hash)
    assert reason is not None  # the request model requires one of the two

    def action(ledger: LedgerContract) -> Outcome:
        _refuse_repeated_answer(session, loan_id, lot_id, "disputed")
        tx = ledger.dispute_lot(caller.signer(), loan_id=loan_id, lot_id=lot_id, reason_hash=reason)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": [lot_id.lower()]})

    return write.record(body, action)
