"""The behaviour score as the API shows it (issue 21): a loan's latest score for those the policy lets see it
("loan.behaviour_score": its lender and auditors; never its borrower, a supplier, another bank or a third
party), the portfolio by band ("portfolio.scores"), and the newest model's card ("score_models.read").

Scores are written by `fundflow score apply` (ledger.scoring); this module only reads them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, tzinfo
from typing import Any

from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.services.access import loan_scope
from ledger.errors import NotFoundError
from ledger.mirror.read import Mirror
from ledger.protocol.codes import LoanStatus
from ledger.protocol.dates import iso_time
from ledger.protocol.money import yuan_text
from ledger.protocol.scores import BAND_WORDS, BANDS
from ledger.store.scores import latest_model_row, latest_scores

__all__ = ["latest_card", "loan_score", "portfolio_scores", "score_out"]

CARD_PATH = "/v1/score-models/latest"


def _stamp(value: datetime) -> int:
    return int((value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp())


def score_out(row: Any, zone: tzinfo) -> dict[str, Any]:
    en, zh = BAND_WORDS[row.band]
    return {
        "score": round(float(row.score), 1),
        "band": row.band,
        "band_en": en,
        "band_zh": zh,
        "pd": round(float(row.pd), 4),
        "reasons": list(row.reasons or []),
        "as_of": iso_time(_stamp(row.as_of), zone),
        "scored_at": iso_time(_stamp(row.scored_at), zone),
        "model_id": int(row.model_id),
        "model_card": CARD_PATH,
    }


def loan_score(session: Session, caller: Caller, loan: Any, zone: tzinfo) -> dict[str, Any] | None:
    """The loan's latest score if the caller may see it and one exists; None otherwise (the answer then
    carries no score field at all)."""
    if not policy.allowed(caller, "loan.behaviour_score", loan):
        return None
    row = latest_scores(session, [loan.loan_id]).get(loan.loan_id)
    return None if row is None else score_out(row, zone)


def latest_card(session: Session, caller: Caller) -> dict[str, Any]:
    """The newest model and its card; before any model is trained, `model_id` and `card` are null and
    `message` says how to train one."""
    policy.require(caller, "score_models.read")
    try:
        row = latest_model_row(session)
    except NotFoundError as exc:
        return {"model_id": None, "card": None, "message": f"{exc.message}; {exc.hint}"}
    return {
        "model_id": int(row.id),
        "kind": row.kind,
        "trained_on": row.trained_on,
        "created": row.created.isoformat() if row.created else None,
        "artifact_sha256": row.artifact_sha256,
        "card": row.card,
    }


def portfolio_scores(session: Session, caller: Caller, zone: tzinfo) -> dict[str, Any]:
    """Open loans the caller sees, by their latest band: count, outstanding, and the band's observed bad rate
    out of time (the newest model card's test period)."""
    policy.require(caller, "portfolio.scores")
    mirror = Mirror(session)
    loans = [ln for ln in mirror.loans(scope=loan_scope(caller)) if int(ln.status) == LoanStatus.OPEN]
    scores = latest_scores(session, [ln.loan_id for ln in loans]) if loans else {}
    currencies = sorted({ln.currency for ln in loans}) or ["CNY"]
    count: dict[str, int] = defaultdict(int)
    outstanding: dict[str, int] = defaultdict(int)
    for ln in loans:
        row = scores.get(ln.loan_id)
        band = row.band if row is not None else "unscored"
        count[band] += 1
        outstanding[band] += int(ln.disbursed) - int(ln.repaid)
    try:
        model = latest_model_row(session)
    except NotFoundError:
        model = None
    observed = {c["band"]: c for c in (model.card.get("calibration", []) if model is not None else [])}
    currency = currencies[0]
    bands = []
    for band in (*BANDS, "unscored"):
        en, zh = BAND_WORDS.get(band, ("not scored yet", "尚未评分"))
        cal = observed.get(band, {})
        bands.append(
            {
                "band": band,
                "band_en": en,
                "band_zh": zh,
                "loans": count.get(band, 0),
                "outstanding": outstanding.get(band, 0),
                "outstanding_yuan": yuan_text(outstanding.get(band, 0), currency),
                "observed_bad_rate": cal.get("observed_bad_rate"),
                "predicted_bad_rate": cal.get("predicted_bad_rate"),
            }
        )
    newest = max((row.as_of for row in scores.values()), default=None)
    return {
        "currency": currency,
        "currencies": currencies,
        "bands": bands,
        "scored_loans": len(scores),
        "open_loans": len(loans),
        "as_of": iso_time(_stamp(newest), zone) if newest is not None else None,
        "model_id": int(model.id) if model is not None else None,
        "trained_on": model.trained_on if model is not None else None,
        "bad_rate_basis": "observed bad rate per band in the newest model's out-of-time test period "
        "(its card's calibration table), not the current loans' outcome",
        "model_card": CARD_PATH,
    }
