"""GET /v1/health: is the chain reachable, how far behind is the mirror. No token needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep
from api.services import health as health_service

__all__ = ["router"]

router = APIRouter(prefix="/v1/health", tags=["health"])

_EXAMPLE = {
    "status": "ok",
    "chain": {"reachable": True, "head": 120, "chain_id": 31337, "error": None},
    "indexer": {"initialized": True, "indexed_block": 120, "lag": 0, "loans": 1, "lots": 9, "events": 40},
    "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
}


@router.get(
    "",
    summary="Chain reachable and indexer lag",
    responses={200: {"content": {"application/json": {"example": _EXAMPLE}}}},
)
def health(services: ServicesDep) -> dict[str, Any]:
    return health_service.health(services)
