"""Canonical JSON: the one serialisation whose bytes are hashed.

Object keys sorted by code point, `,` and `:` without whitespace, UTF-8. Two digests depend on these bytes
and on nothing else, so they must never change:

- the loan terms hash (`ledger.protocol.terms.terms_hash`, the on-chain `termsHash`) and the API's
  idempotency request hash (`api.writes`) take non-ASCII characters as raw UTF-8 (`ascii_only=False`):
  terms written in Chinese hash as their UTF-8 text, which is what a lender's own tools produce;
- the audit bundle's digests (`ledger.audit.bundle`, docs/bundle-format.md "Canonical JSON") escape
  non-ASCII as `\\uXXXX` (`ascii_only=True`): a bundle file is ASCII by definition, and its per-event and
  document digests are recomputed by outside verifiers from that specification.

The same value gives different bytes in the two forms as soon as it holds a non-ASCII character, so each
digest names its form explicitly.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["canonical_json"]


def canonical_json(value: Any, *, ascii_only: bool = False) -> bytes:
    """`value` as canonical JSON bytes: sorted keys, no whitespace, UTF-8; with `ascii_only`, non-ASCII
    characters escaped as `\\uXXXX` (the audit bundle's form)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only).encode("utf-8")
