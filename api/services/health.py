"""Health: is the chain reachable (and the chain the mirror was built from), how far behind is the mirror."""

from __future__ import annotations

from typing import Any

from api.services import Services
from ledger.errors import ChainError
from ledger.mirror.read import Mirror
from ledger.mirror.status import indexer_status

__all__ = ["chain_mismatch", "health"]


def health(services: Services) -> dict[str, Any]:
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
    mismatch = chain_mismatch(services) if reachable else None
    if mismatch is not None:
        error = mismatch
    return {
        "status": "ok" if reachable and s.initialized and mismatch is None else "degraded",
        "chain": {
            "reachable": reachable,
            "head": head,
            "chain_id": services.deployment.chain_id,
            "error": error,
            "mismatch": mismatch is not None,
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


def chain_mismatch(services: Services) -> str | None:
    """Why the node is not the chain the mirror (or the deployment) was built from; None when it is.
    A node replaced by a fresh chain (new genesis) is the case this catches: the indexer refuses it."""
    with services.engine.connect() as conn:
        row = Mirror(conn).checkpoint()
    expected_id, expected_genesis = (
        (row.chain_id, row.genesis_hash)
        if row is not None
        else (services.deployment.chain_id, services.deployment.genesis_hash)
    )
    try:
        node_id = int(services.client.rpc("eth_chainId"), 16)
        genesis = services.client.get_header(0).hash
    except ChainError:
        return None  # unreachable is reported as such
    if node_id == expected_id and genesis == expected_genesis:
        return None
    return (
        f"ChainMismatch: the node is chain {node_id} with genesis {genesis}, but the mirror was built from "
        f"chain {expected_id} with genesis {expected_genesis}; the indexer refuses to mix them"
    )
