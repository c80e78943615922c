"""Supply-chain vouchers (issue 22): a bank sets a core enterprise's credit line; the core enterprise issues
vouchers against invoices (确权); holders split and pass parts on and ask banks to finance them (贴现); the
asked bank accepts; the core enterprise settles each part at maturity (到期兑付). Thin: the work is in
api/services/vouchers.py, the rules of who may in api/policy.py (VOUCHER_POLICY)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import (
    CreditLineRequest,
    FinancingRequest,
    IssueVoucherRequest,
    PaymentRefRequest,
    SplitRequest,
    WriteResult,
)
from api.services import vouchers as service
from api.writes import WriteDep

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/vouchers",
    tags=["vouchers"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)

VoucherId = Annotated[str, Path(pattern="^0x[0-9a-fA-F]{64}$", description="the voucher's id (0x + 64 hex)")]
PartId = Annotated[int, Path(ge=1, le=2**32 - 1, description="the part's number (1: the voucher as issued)")]
_WRITE: dict[str, Any] = {
    "response_model": WriteResult,
    "status_code": 201,
    "responses": {409: ERROR_RESPONSES[409]},
}


@router.get("", summary="Your vouchers: payables against the line, parts held, or the financing book")
def list_vouchers(caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    return service.overview(session, services, caller)


@router.post("", summary="Issue a voucher to a supplier against an invoice (确权; core enterprise)", **_WRITE)
def issue(body: IssueVoucherRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return service.issue(session, write, body)


@router.post("/credit-lines", summary="Set a core enterprise's credit line (授信额度; lender)", **_WRITE)
def credit_line(body: CreditLineRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return service.set_credit_line(session, write, body)


@router.get("/financing-book", summary="The bank's financing book: the parts it financed or was asked to")
def financing_book(
    caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> list[dict[str, Any]]:
    return service.financing_book(session, services, caller)


@router.get("/exposure", summary="The bank's exposure per core enterprise: line, outstanding, financed")
def exposure(caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> list[dict[str, Any]]:
    return service.exposure(session, services, caller)


@router.get(
    "/{voucher}", summary="A voucher's tree: holders, amounts, dates, state (your branch if a holder)"
)
def get_voucher(
    voucher: VoucherId, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return service.voucher(session, services, caller, voucher)


@router.get("/{voucher}/verification", summary="Verify the voucher's mirrored tree against the chain")
def verification(
    voucher: VoucherId, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return service.verification(session, services, caller, voucher)


@router.get(
    "/{voucher}/bundle",
    summary="Download the voucher's offline proof bundle (see docs/bundle-format.md, voucher bundles)",
    description="Every event of the voucher, the block header it is proven at, and the proofs tying the "
    "voucher's on-chain head to that header's state root. Check it with `fundflow verify-bundle FILE "
    "--block-hash H --deployment RECORD`.",
    response_class=Response,
)
def bundle(
    voucher: VoucherId, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> Response:
    text, name = service.bundle(session, services, caller, voucher)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(text, media_type="application/json", headers=headers)


@router.get(
    "/{voucher}/export",
    summary="Export the voucher's verified trail: an Excel workbook, CSV (one row per event) or JSON",
    description="The verdict (verified against the chain at a block), every event from issue (确权签发) to "
    "settlement (到期兑付) with its date in the bank's time zone, part, from and to by name, amount in yuan "
    "and currency, then the machine's columns (block, addresses, fen, hashes); and every part (holder, face, "
    "state, who financed it and what was paid, when it was settled). xlsx has typed cells; the CSV carries "
    "the verdict on each row. The same callers as verification.",
    response_class=Response,
)
def export(
    voucher: VoucherId,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    format: Annotated[  # noqa: A002
        Literal["xlsx", "csv", "json"], Query(description="xlsx (an Excel workbook), csv or json.")
    ] = "json",
) -> Response:
    content, media_type, name = service.export(session, services, caller, voucher, format)
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(content, media_type=media_type, headers=headers)


@router.post(
    "/{voucher}/parts/{part}/split", summary="Split a part and transfer the pieces (holder)", **_WRITE
)
def split(
    voucher: VoucherId, part: PartId, body: SplitRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return service.split(session, write, voucher, part, body)


@router.post(
    "/{voucher}/parts/{part}/financing", summary="Ask a bank to finance a part (贴现; holder)", **_WRITE
)
def request_financing(
    voucher: VoucherId, part: PartId, body: FinancingRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return service.request_financing(session, write, voucher, part, body)


@router.post(
    "/{voucher}/parts/{part}/financing/accept",
    summary="Accept financing of a part: pay the discounted amount, take the part (the asked bank)",
    **_WRITE,
)
def accept_financing(
    voucher: VoucherId, part: PartId, body: PaymentRefRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return service.accept_financing(session, write, voucher, part, body)


@router.post("/{voucher}/parts/{part}/settle", summary="Settle a part at maturity (到期兑付; core)", **_WRITE)
def settle(
    voucher: VoucherId, part: PartId, body: PaymentRefRequest, session: SessionDep, write: WriteDep
) -> JSONResponse:
    return service.settle(session, write, voucher, part, body)
