"""A loan's suggested five-category class (五级分类) with the criteria behind it, and class changes by
maker-checker: one lender account proposes with a written reason, a second account of the same bank approves,
which sends the class on chain (the reason's keccak256 as the reason hash). A class better than the rules'
floor is refused, naming the criterion."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.schemas import ClassificationProposalRequest, WriteResult
from api.services import risk as risk_service
from api.writes import WriteDep

# A proposal's number: a positive 64-bit integer as the database stores it (larger: a 422, not a 500).
ProposalId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The proposal's number.")]

__all__ = ["proposals_router", "router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)


@router.get("/classification-suggestion", summary="The suggested class, with the named criteria")
def get_suggestion(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return risk_service.suggestion(session, services, caller, loan)


@router.post(
    "/classification",
    status_code=201,
    summary="Propose a class with a written reason (lender; a second account of the bank approves)",
)
def propose_classification(
    loan: str,
    body: ClassificationProposalRequest,
    caller: ParticipantDep,
    session: SessionDep,
    services: ServicesDep,
) -> dict[str, Any]:
    return risk_service.propose(session, services, caller, loan, body)


@router.get("/classification-proposals", summary="The loan's classification proposals, newest first")
def list_proposals(loan: str, caller: ParticipantDep, session: SessionDep) -> list[dict[str, Any]]:
    return risk_service.list_proposals(session, caller, loan)


proposals_router = APIRouter(
    prefix="/v1/classification-proposals",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)


@proposals_router.post(
    "/{proposal_id}/approve",
    response_model=WriteResult,
    status_code=201,
    summary="Approve a proposal (another lender account of the bank): sends the class on chain",
    responses={409: ERROR_RESPONSES[409]},
)
def approve(proposal_id: ProposalId, session: SessionDep, write: WriteDep) -> JSONResponse:
    return risk_service.approve(session, write, proposal_id)


@proposals_router.post("/{proposal_id}/reject", summary="Reject (or withdraw) a proposal")
def reject(
    proposal_id: ProposalId, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    return risk_service.reject(session, services, caller, proposal_id)
