"""Loans: list and detail (as mirrored), the whole trail of lots, terms; open, disburse, restructure."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import Offset, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import (
    DisburseRequest,
    LoanOut,
    OpenLoanRequest,
    Page,
    RestructureRequest,
    Trail,
    WriteResult,
)
from api.services import loans as loans_service
from api.services import terms_history as terms_history_service
from api.services.human import humanize
from api.services.loans import MAX_TREE_DEPTH
from api.writes import WriteDep
from ledger.protocol.codes import LoanStatus, RiskClass

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans",
    tags=["loans"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422, 503)},
)

_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {409: ERROR_RESPONSES[409]}


_STATUS_CODES = ", ".join(f"{int(s)} {s.en}" for s in LoanStatus if s)
_CLASS_CODES = ", ".join(f"{int(c)} {c.en}" for c in RiskClass)


@router.get("", response_model=Page[LoanOut], summary="Loans visible to the caller")
def list_loans(
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    status: Annotated[int | None, Query(ge=1, le=max(LoanStatus), description=_STATUS_CODES)] = None,
    risk_class: Annotated[int | None, Query(ge=0, le=max(RiskClass), description=_CLASS_CODES)] = None,
    borrower: Annotated[str | None, Query(description="borrower address")] = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    page = loans_service.list_loans(
        session, caller, status=status, risk_class=risk_class, borrower=borrower, offset=offset, limit=limit
    )
    return humanize(session, services.settings.bank_zone, page)


@router.get("/{loan}", response_model=LoanOut, summary="One loan, by id or loan number")
def get_loan(loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    zone = services.settings.bank_zone
    return humanize(session, zone, loans_service.get_loan(session, caller, loan, zone))


@router.get("/{loan}/terms", summary="The loan's structured terms and whether they match the on-chain hash")
def get_terms(loan: str, caller: ParticipantDep, session: SessionDep) -> dict[str, Any]:
    return loans_service.get_terms(session, caller, loan)


@router.get(
    "/{loan}/terms-history",
    summary="Every version of the loan's terms: when each came into force, its hash and the change kind "
    "(lenders, auditors)",
)
def get_terms_history(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    answer = terms_history_service.terms_history(session, caller, loan)
    return humanize(session, services.settings.bank_zone, answer, answer["currency"])


@router.get(
    "/{loan}/trail",
    response_model=Trail,
    summary="The whole tree of lots of a loan",
    description="`format=tree` (default) nests each lot's onward payments under it; `format=flat` lists the "
    "lots parents-first, each with `parent_lot_id` and `depth`, for trails deeper than "
    f"{MAX_TREE_DEPTH} levels or for tabular use.",
)
def get_trail(
    loan: str,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
    format: Annotated[Literal["tree", "flat"], Query(description="tree or flat")] = "tree",  # noqa: A002
) -> dict[str, Any]:
    answer = loans_service.trail_answer(session, services, caller, loan, format)
    return humanize(session, services.settings.bank_zone, answer, answer["loan"]["currency"])


@router.post(
    "",
    response_model=WriteResult,
    status_code=201,
    summary="Open a loan (lenders)",
    responses=_WRITE_RESPONSES,
)
def open_loan(body: OpenLoanRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return loans_service.open_loan(session, write, body)


@router.post(
    "/{loan}/disbursements",
    response_model=WriteResult,
    status_code=201,
    summary="Disburse part of the principal into a new lot (lenders)",
    responses=_WRITE_RESPONSES,
)
def disburse(loan: str, body: DisburseRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return loans_service.disburse(session, write, loan, body)


@router.post(
    "/{loan}/restructure",
    response_model=WriteResult,
    status_code=201,
    summary="Restructure: new maturity and terms; the new terms hash goes on chain (lenders)",
    responses=_WRITE_RESPONSES,
)
def restructure(loan: str, body: RestructureRequest, session: SessionDep, write: WriteDep) -> JSONResponse:
    return loans_service.restructure(session, write, loan, body)
