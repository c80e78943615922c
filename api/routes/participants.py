"""Participants: who is on the ledger (names stay off chain) and who the caller is."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ParticipantDep, ServicesDep
from api.errors import ERROR_RESPONSES

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
    return {
        "name": caller.name,
        "role": caller.role,
        "org_id": caller.org_id,
        "key_name": caller.key_name,
        "address": caller.address,
    }


@router.get(
    "",
    summary="Registered participants",
    responses={200: {"content": {"application/json": {"example": _LIST}}}},
)
def list_participants(caller: ParticipantDep, services: ServicesDep) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "role": p.role, "org_id": p.org_id, "accounts": dict(p.accounts)}
        for p in sorted(services.directory.get(), key=lambda p: p.name)
    ]
