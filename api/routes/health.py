"""GET /v1/health: is the chain reachable, how far behind is the mirror. No token needed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import ServicesDep
from ledger.status import indexer_status

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
    s = indexer_status(services.engine, services.client)
    reachable = s.node_error is None and s.head is not None
    if not s.initialized:
        try:
            head: int | None = services.client.block_number()
            reachable, error = True, None
        except Exception as exc:  # noqa: BLE001 - health reports, never fails
            head, reachable, error = None, False, str(exc)
    else:
        head, error = s.head, s.node_error
    return {
        "status": "ok" if reachable and s.initialized else "degraded",
        "chain": {
            "reachable": reachable,
            "head": head,
            "chain_id": services.deployment.chain_id,
            "error": error,
        },
        "indexer": {
            "initialized": s.initialized,
            "indexed_block": s.indexed_block,
            "lag": s.lag,
            "updated_at": s.updated_at.isoformat() if s.updated_at else None,
            "loans": s.loans,
            "lots": s.lots,
            "events": s.events,
        },
        "contract": services.deployment.address,
    }
