"""A lender's portfolio: migration between risk classes over a period (迁徙率), as JSON or CSV."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import ParticipantDep, SessionDep
from api.errors import ERROR_RESPONSES
from api.services import class_migration as migration_service

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/portfolio",
    tags=["portfolio"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 403, 422)},
)

Start = Annotated[
    date | None, Query(description="first day of the period (YYYY-MM-DD, UTC); default end - 90 days")
]
End = Annotated[
    date | None, Query(description="last day of the period (YYYY-MM-DD, UTC); default the chain's date")
]
Currency = Annotated[str, Query(pattern=r"^[A-Z]{3}$")]
Lender = Annotated[str | None, Query(description="auditors: one bank's organisation id")]


@router.get("/migration", summary="Migration between risk classes over a period (迁徙率)")
def migration(
    caller: ParticipantDep,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    currency: Currency = "CNY",
    lender: Lender = None,
) -> dict[str, Any]:
    return migration_service.migration(
        session, caller, start=start, end=end, currency=currency, lender=lender
    )


@router.get(
    "/migration.csv",
    summary="The migration matrix as CSV",
    responses={200: {"content": {"text/csv": {}}}},
)
def migration_csv(
    caller: ParticipantDep,
    session: SessionDep,
    start: Start = None,
    end: End = None,
    currency: Currency = "CNY",
    lender: Lender = None,
) -> Response:
    data = migration_service.migration(
        session, caller, start=start, end=end, currency=currency, lender=lender
    )
    return Response(
        migration_service.migration_csv(data),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="migration-{data["start"]}-{data["end"]}.csv"'
        },
    )
