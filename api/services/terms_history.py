"""Every version of a loan's terms (issue: point-in-time terms): each hash the chain named for the loan
(`LoanOpened`, then each `TermsChanged` / `LoanRestructured`), in chain order, with the document kept for it
in `terms_versions` and whether that document still hashes to it."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api.deps import Caller
from api.schemas import TERMS_CHANGES
from api.services.access import loan_for
from ledger.mirror.read import Mirror
from ledger.store.offchain import TermsVersion, terms_hash

__all__ = ["terms_history"]

versions_t: sa.Table = TermsVersion.__table__  # type: ignore[attr-defined]

CHANGE_NAMES = {code: name for name, code in TERMS_CHANGES.items()}
"""`TermsChanged.change` code -> the name the restructure request takes."""


def terms_history(session: Session, caller: Caller, ref: str) -> dict[str, Any]:
    """The loan's terms versions, oldest first: `change` is "opening", a `TermsChanged` kind (extension,
    grace_period, ...) or "restructuring" (an older `LoanRestructured`, which named no kind); `block_number`
    is where it came into force (the answer gains its time in the bank's zone). `terms` is the kept
    document, None when none is kept for that hash; `matches_hash` says whether it hashes to it."""
    row = loan_for(session, caller, ref, "loan.terms_history")
    loan_id = row.loan_id
    kept = {
        str(h).lower(): doc
        for h, doc in session.execute(
            sa.select(versions_t.c.terms_hash, versions_t.c.terms).where(versions_t.c.loan_id == loan_id)
        )
    }
    mirror = Mirror(session)
    opened = mirror.opening(loan_id)
    named: list[dict[str, Any]] = []
    if opened is not None:
        args = json.loads(opened.args) if isinstance(opened.args, str) else opened.args
        args = args if isinstance(args, dict) else {}
        maturity = _int(args.get("maturity"))
        named.append(_version("opening", str(args.get("termsHash", "")), opened, None, maturity))
    for c in mirror.records(loan_id, ["restructurings"]).restructurings:
        kind = (
            "restructuring" if c.change_kind is None else CHANGE_NAMES.get(c.change_kind, str(c.change_kind))
        )
        named.append(_version(kind, c.terms_hash, c, c.financial_difficulty, c.maturity))
    for v in named:
        document = kept.get(v["terms_hash"])
        v["terms"] = document
        v["matches_hash"] = isinstance(document, dict) and terms_hash(document) == v["terms_hash"]
    if named:
        named[-1]["current"] = True
    hashes = {v["terms_hash"] for v in named}
    return {
        "loan_id": loan_id,
        "currency": row.currency,
        "terms_hash": row.terms_hash,
        "versions": named,
        "not_named_on_chain": sorted(h for h in kept if h not in hashes),
    }


def _version(
    change: str, thash: str, at: Any, difficulty: bool | None, maturity: int | None
) -> dict[str, Any]:
    return {
        "terms_hash": thash.lower(),
        "change": change,
        "financial_difficulty": difficulty,
        "maturity": maturity,
        "block_number": int(at.block_number),
        "log_index": int(at.log_index),
        "transaction_hash": at.transaction_hash,
        "current": False,
    }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
