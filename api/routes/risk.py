"""A loan's suggested five-category class (五级分类), and applying a class with a written reason: the text is
kept off chain, its keccak256 goes on chain as the reason hash. Departing from the suggestion needs one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field, WithJsonSchema

from api.access import resolve_loan_id, visible_loan
from api.deps import ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.routes.common import check_lender
from api.writes import Outcome, WriteDep
from ledger.chain.contract import LedgerContract, RiskClass
from ledger.monitoring.classification import CLASS_LABELS, apply_classification, suggest_classification
from ledger.monitoring.monitor import Monitor

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/loans/{loan}",
    tags=["classifications"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 404, 422)},
)


RISK_CLASSES = {c.name.lower(): int(c) for c in RiskClass}


def _risk(value: Any) -> Any:
    """'substandard' (any case) or the RiskClass number."""
    return RISK_CLASSES.get(value.lower(), value) if isinstance(value, str) else value


class ClassificationWithReason(BaseModel):
    risk_class: Annotated[
        int,
        Field(ge=0, le=4),
        BeforeValidator(_risk),
        WithJsonSchema({"anyOf": [{"type": "string", "enum": list(RISK_CLASSES)}, {"type": "integer"}]}),
    ]
    reason: str | None = Field(
        None, max_length=8000, description="required when the class differs from the suggestion"
    )


def _monitor(services: Any) -> Monitor:
    return Monitor.from_settings(services.settings)


@router.get("/classification-suggestion", summary="The suggested class, with its reasons")
def get_suggestion(
    loan: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep
) -> dict[str, Any]:
    caller.require("lender", "auditor", action="see classification suggestions")
    row = visible_loan(session, caller, loan)
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


@router.post("/classification", status_code=201, summary="Apply a class with a written reason (lender)")
def classify_with_reason(
    loan: str,
    body: ClassificationWithReason,
    session: SessionDep,
    write: WriteDep,
) -> JSONResponse:
    caller, services = write.caller, write.services
    loan_id = resolve_loan_id(session, loan)
    check_lender(session, caller, loan_id, "classify loans")

    def action(ledger: LedgerContract) -> Outcome:
        applied = apply_classification(
            services.engine,
            ledger,
            caller.signer(),
            loan_id=loan_id,
            risk_class=body.risk_class,
            reason=body.reason,
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

    return write.record(body, action, path=f"/v1/loans/{loan_id}/classification")
