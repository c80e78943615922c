"""Payments: pay out of a lot (single or batch) and the payments an enterprise received."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.access import resolve_loan_id
from api.deps import Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.routes.common import created_lots, lot_out
from api.schemas import LotOut, Page, PayBatchRequest, PayRequest, WriteResult
from api.writes import Outcome, WriteDep
from ledger.chain.contract import LedgerContract, PaymentSpec
from ledger.mirror.models import Lot

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/payments",
    tags=["payments"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)
lots_t: sa.Table = Lot.__table__  # type: ignore[attr-defined]


@router.get("/received", response_model=Page[LotOut], summary="Payments the caller's organisation received")
def received(
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    confirmation: Annotated[str | None, Query(pattern="^(unconfirmed|confirmed|disputed)$")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    query = sa.select(lots_t).where(lots_t.c.holder.in_(sorted(caller.org_accounts)))
    if confirmation is not None:
        query = query.where(lots_t.c.confirmation == confirmation)
    total = session.execute(sa.select(sa.func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        query.order_by(lots_t.c.block_number, lots_t.c.log_index).offset(offset).limit(limit)
    )
    names = {a: p.name for p in services.directory.get() for a in p.accounts.values()}
    return {"items": [lot_out(r, names) for r in rows], "total": total, "offset": offset, "limit": limit}


def _require_payer(caller: Any) -> None:
    caller.require("enterprise", "lender", action="pay out of a lot")


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Pay part of a lot to a payee (lot holder or servicing lender)",
    responses={409: ERROR_RESPONSES[409]},
)
def pay(
    body: PayRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller = write.caller
    _require_payer(caller)
    loan_id = resolve_loan_id(session, body.loan)

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.pay(
            caller.signer(),
            loan_id=loan_id,
            from_lot=body.from_lot,
            payee=body.payee,
            amount=body.amount,
            purpose=body.purpose,
            evidence_hash=body.evidence_hash,
        )
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": created_lots(tx)})

    return write.record(body, action)


@router.post(
    "/batch",
    response_model=WriteResult,
    status_code=201,
    summary="Up to 500 payments of one loan in one transaction, all or nothing",
    description="One payBatch transaction with a computed gas limit. It must fit the chain's per-transaction "
    "gas cap (2^24 under EIP-7825): 500 payments out of one lot fit, 471 when each comes out of a different "
    "lot; a larger batch is refused with 422 before anything is sent.",
    responses={409: ERROR_RESPONSES[409]},
)
def pay_batch(
    body: PayBatchRequest,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller, services = write.caller, write.services
    _require_payer(caller)
    loan_id = resolve_loan_id(session, body.loan)
    specs = [PaymentSpec(p.from_lot, p.payee, p.amount, p.purpose, p.evidence_hash) for p in body.payments]
    services.ledger.check_batch(specs)  # too big for one transaction: 422, and the key stays unused

    def action(ledger: LedgerContract) -> Outcome:
        tx = ledger.pay_batch(caller.signer(), loan_id=loan_id, payments=specs)
        return Outcome(tx, {"loan_id": loan_id, "lot_ids": created_lots(tx)})

    return write.record(body, action)
