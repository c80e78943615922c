"""Participants: who is on the ledger (names stay off chain) and who the caller is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ParticipantDep, ServicesDep
from api.errors import ERROR_RESPONSES
from api.services import participants as participants_service

__all__ = ["router"]

router = APIRouter(prefix="/v1/participants", tags=["participants"], responses={401: ERROR_RESPONSES[401]})

_ME = {
    "name": "Lakeside Commercial Bank",
    "role": "lender",
    "org_id": "0x3f…",
    "key_name": "lakeside-commercial-bank",
    "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
}
_LIST = [
    {
        "name": "Lakeside Commercial Bank",
        "role": "lender",
        "org_id": "0x3f…",
        "accounts": {"lakeside-commercial-bank": "0x7099…"},
    }
]


@router.get(
    "/me",
    summary="The caller's participant",
    responses={200: {"content": {"application/json": {"example": _ME}}}},
)
def me(caller: ParticipantDep) -> dict[str, Any]:
    return participants_service.me(caller)


@router.get(
    "",
    summary="Registered participants",
    responses={200: {"content": {"application/json": {"example": _LIST}}}},
)
def list_participants(caller: ParticipantDep, services: ServicesDep) -> list[dict[str, Any]]:
    return participants_service.list_participants(services)
