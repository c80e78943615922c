"""Audit outputs of a loan: online verification against the chain, the offline proof bundle, the printable
report and the trail export. Each covers the whole trail, so only callers who see the whole trail (the
loan's lender, its borrower, auditors) get them; someone who only holds or paid a lot gets 403.

A verification that runs and finds problems is an answer (200, `ok: false`, the rows named), not an error.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import audit as audit_service

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans",
    tags=["audit"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)

_BlockQuery = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**63 - 1,
        description="Verify at this block (default: the block the mirror is complete up to).",
    ),
]

_VERIFICATION_EXAMPLE: dict[str, Any] = {
    "loan_id": "0x2b…",
    "ok": False,
    "summary": "FAILED at block 118: 5/6 events, 2/2 lots, 3/3 stored documents verified; head 0x77…",
    "chain_id": 31337,
    "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
    "block": {"number": 118, "hash": "0x9a…"},
    "head_on_chain": "0x77…",
    "head_recomputed": "0x3c…",
    "head_now": "0x77…",
    "trail_grew_since": False,
    "event_count": 6,
    "attestation_count": 0,
    "problems": [
        "loan repaid: mirror 25000001, getLoan.repaid 25000000",
        "event Paid at block 112 log 1: field amount: mirror 10000001, chain 10000000",
    ],
    "loan_problems": ["loan repaid: mirror 25000001, getLoan.repaid 25000000"],
    "record_problems": [],
    "events": [
        {
            "name": "Paid",
            "block_number": 112,
            "block_hash": "0x51…",
            "log_index": 1,
            "transaction_hash": "0xe4…",
            "head": "0x3c…",
            "ok": False,
            "problems": ["field amount: mirror 10000001, chain 10000000", "hash chain breaks here"],
        }
    ],
    "lots": [
        {
            "lot_id": "0x5f…",
            "parent_lot_id": None,
            "holder": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "amount": "500000",
            "remaining": "400000",
            "ok": True,
            "problems": [],
        }
    ],
    "documents": [
        {
            "hash": "0xab…",
            "referenced_by": ["Disbursed at block 110 log 0"],
            "present": True,
            "ok": True,
            "problem": None,
        }
    ],
}
_BUNDLE_EXAMPLE: dict[str, Any] = {
    "format": "fundflow-proof-bundle",
    "version": 1,
    "chainId": 31337,
    "contract": "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    "loanId": "0x2b…",
    "head": "0x77…",
    "header": {"number": "0x76", "hash": "0x9a…", "stateRoot": "0x0d…"},
    "accountProof": {"address": "0x5fbd…", "storageHash": "0x1e…", "proof": ["0xf9…"]},
    "storageProof": {"key": "0x8c…", "proof": ["0xf8…"]},
    "events": [{"name": "LoanOpened", "blockNumber": 101, "logIndex": 0, "args": {}, "digest": "0x4d…"}],
    "digest": "0x6a…",
}
_CSV_EXAMPLE = (
    "date,event_en,event_zh,payee_name,amount_yuan,currency,purpose_en,purpose_zh,"
    "block_number,log_index,time,event,lot_id,parent_lot_id,payee,amount,purpose,declared_use,document_hash,"
    "head,transaction_hash,block_hash,verified,problems\n"
    "2026-03-02T17:15:00+08:00,disbursement,放款,Supplier One,5000.00,CNY,raw materials,原材料采购,"
    "110,0,2026-03-02T09:15:00Z,Disbursed,0x5f…,,0x7099…,500000,1,true,0xab…,0x3c…,0xe4…,0x51…,true,\n"
)
_502 = {
    "description": "The node's answers did not make a bundle that proves the trail",
    "content": {
        "application/json": {
            "example": {
                "error": "Bundle",
                "message": "accountProof.proof[2]: node hash does not match its parent's reference",
                "hint": "Do not trust this bundle: ask its producer for a fresh one (`fundflow bundle`), or "
                "verify the trail online with `fundflow verify`.",
            }
        }
    },
}


@router.get(
    "/{loan}/verification",
    summary="Verify the loan's mirrored trail against the chain (per event, lot and document)",
    description="Recomputes the hash chain from the mirror and compares it with `headOf` at the block, "
    "checks every mirrored event against the node's logs, every column of the loan, of each lot and of each "
    "record (repayments, classifications, ...) against its chain source (`getLoan`, `getLot`, the events; "
    "ledger/audit/facts.py), and re-hashes the stored documents. `events` lists every event of the loan, "
    "attestations included, each with its head (`event_count`, as on the loan). `ok: false` with "
    "`problems` naming each row and column is a result, not an error.",
    responses={200: {"content": {"application/json": {"example": _VERIFICATION_EXAMPLE}}}},
)
def get_verification(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep, block: _BlockQuery = None
) -> dict[str, Any]:
    return audit_service.verification(session, services, caller, loan, block)


@router.get(
    "/{loan}/bundle",
    summary="Download an offline proof bundle of the loan's trail (see docs/bundle-format.md)",
    description="Every event of the loan, the block header it is proven at, and the account and storage "
    "proofs tying the loan's on-chain head to that header's state root. Check it with "
    "`fundflow verify-bundle FILE --block-hash H --deployment RECORD` against a block hash you trust and the "
    "ledger's deployment record (or `--ledger ADDRESS`): a bundle of any other contract address is refused.",
    response_class=Response,
    responses={200: {"content": {"application/json": {"example": _BUNDLE_EXAMPLE}}}, 502: _502},
)
def get_bundle(
    loan: str,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    block: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="Prove at this block (default: the latest).")
    ] = None,
) -> Response:
    file = audit_service.bundle(session, services, caller, loan, block)
    return Response(file.content, media_type=file.media_type, headers=file.all_headers())


@router.get(
    "/{loan}/report",
    summary="The printable audit report (HTML): verdict, block proven at, problems, attestations, trail",
    description="One self-contained HTML file that prints on A4. `X-Report-Hash` is keccak256 of the exact "
    "bytes served: the `report_hash` to attest with POST /v1/loans/{loan}/attestations.",
    response_class=HTMLResponse,
    responses={
        200: {
            "content": {"text/html": {"example": '<!DOCTYPE html><html lang="en">…VERIFIED at block 118…'}},
            "headers": {
                "X-Report-Hash": {"schema": {"type": "string"}, "description": "keccak256 of the body"}
            },
        }
    },
)
def get_report(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep, block: _BlockQuery = None
) -> HTMLResponse:
    file = audit_service.report(session, services, caller, loan, block)
    return HTMLResponse(file.content, headers=file.all_headers())


@router.get(
    "/{loan}/export",
    summary="Export the verified trail as CSV (one row per event), JSON or an Excel workbook",
    description="Each row says whether it verified and why not, with the date (bank's time zone), names, "
    "amount in yuan with its currency and purpose in English and Chinese first, then the machine's columns "
    "(block, addresses, `amount` in fen). JSON adds the verification result and the attestations (with "
    "whether the trail grew since each); xlsx has typed cells (dates, yuan amounts, integers).",
    response_class=Response,
    responses={
        200: {
            "content": {
                "text/csv": {"example": _CSV_EXAMPLE},
                "application/json": {"example": _VERIFICATION_EXAMPLE | {"trail": [], "attestations": []}},
            }
        }
    },
)
def get_export(
    loan: str,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    format: Annotated[  # noqa: A002
        Literal["csv", "json", "xlsx"], Query(description="csv, json or xlsx (an Excel workbook).")
    ] = "json",
    block: _BlockQuery = None,
) -> Response:
    file = audit_service.export(session, services, caller, loan, format, block)
    return Response(file.content, media_type=file.media_type, headers=file.all_headers())
