"""Participants: who is on the ledger (names stay off chain) and who the caller is."""

from __future__ import annotations

from typing import Any

from api.deps import Caller
from api.services import Services

__all__ = ["list_participants", "me"]


def me(caller: Caller) -> dict[str, Any]:
    return {
        "name": caller.name,
        "role": caller.role,
        "org_id": caller.org_id,
        "key_name": caller.key_name,
        "address": caller.address,
    }


def list_participants(services: Services) -> list[dict[str, Any]]:
    return [
        {"name": p.name, "role": p.role, "org_id": p.org_id, "accounts": dict(p.accounts)}
        for p in sorted(services.directory.get(), key=lambda p: p.name)
    ]
