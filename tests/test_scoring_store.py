"""The behaviour score's store and its effects on monitoring: a model's artifact is saved with its hash and
refused when altered; scores are kept per loan, model and date; a worse band raises `score_band_worse` and a
D or E band shortens the site-visit interval (pure rule tests on hand-made facts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from score_frames import feature_dataset

from ledger.errors import NotFoundError, StorageError
from ledger.monitoring.rules import (
    DAY,
    LoanFacts,
    LotFact,
    Severity,
    Thresholds,
    missed_site_visit,
    score_band_worse,
)
from ledger.scoring.features import FEATURES
from ledger.scoring.model import score_frame, train
from ledger.scoring.store import latest_scores, load_model, save_model, save_scores
from ledger.store.scores import score_history

LABEL = {"horizon_days": 365, "dpd_threshold": 90}


def _facts(bands: tuple[tuple[int, str], ...], now_days: float = 0, risk_class: int = 0) -> LoanFacts:
    t0 = 1_700_000_000
    lot = LotFact("0x01", None, "0xb", 100, 100, 1, True, True, "unconfirmed", None, None, 2, 0, t0)
    return LoanFacts(
        loan_id="0xloan", lender_org="0xbank", borrower="0xb", principal=100, disbursed=100, repaid=0,
        currency="CNY", maturity=t0 + 900 * DAY, status=1, block_number=1, opened_at=t0, lots=[lot],
        repayments=[], valuations=[], inspections=[], terms=None, now=t0 + int(now_days * DAY),
        risk_class=risk_class, score_bands=bands,
    )  # fmt: skip


def test_a_worse_band_raises_one_alert_keyed_by_the_first_scoring_in_it() -> None:
    (alert,) = score_band_worse(_facts(((300, "D"), (200, "D"), (100, "B"))), Thresholds())
    assert alert.rule == "score_band_worse"
    assert alert.cause_key == "score-band:200:D"
    assert alert.severity is Severity.MEDIUM
    assert alert.details == {"from_band": "B", "to_band": "D", "scored_as_of": 200}
    assert "评分等级由B降至D" in alert.title
    assert "every 30 days" in alert.explanation
    (worst,) = score_band_worse(_facts(((300, "E"), (200, "D"))), Thresholds())
    assert worst.severity is Severity.HIGH and worst.cause_key == "score-band:300:E"


@pytest.mark.parametrize(
    "bands",
    [(), ((100, "C"),), ((300, "C"), (200, "C")), ((300, "B"), (200, "D"))],
    ids=["never scored", "scored once", "same band", "better band"],
)
def test_no_alert_without_a_worse_band(bands: tuple[tuple[int, str], ...]) -> None:
    assert score_band_worse(_facts(bands), Thresholds()) == []


@pytest.mark.parametrize(
    ("band", "now", "raised"),
    [
        (None, 31, False),
        ("C", 31, False),
        ("D", 30, False),
        ("D", 31, True),
        ("E", 31, True),
        ("D", 91, True),
    ],
)
def test_band_d_or_e_shortens_the_site_visit_interval_to_the_score_policy(
    band: str | None, now: float, raised: bool
) -> None:
    bands = () if band is None else ((1, band),)
    found = missed_site_visit(_facts(bands, now_days=now), Thresholds())
    assert bool(found) is raised
    if raised and band in ("D", "E"):
        assert found[0].details["interval_days"] == 30 and found[0].details["score_band"] == band
        assert f"behaviour score band {band}" in found[0].explanation


@pytest.fixture(scope="module")
def fitted() -> Any:
    data = feature_dataset()
    return data, train(data, FEATURES, trained_on="simulated", label=LABEL)


def test_a_model_is_stored_with_its_hash_and_scores_are_kept_per_loan(
    db_engine: Any, tmp_path: Path, fitted: Any
) -> None:
    data, model = fitted
    engine = db_engine
    with pytest.raises(NotFoundError, match="no behaviour-score model"):
        load_model(engine)
    model_id, card = save_model(engine, model, tmp_path)
    row, loaded = load_model(engine)
    assert row.id == model_id == card["model_id"] and row.trained_on == "simulated"
    assert card["artifact_sha256"] == row.artifact_sha256 and len(row.artifact_sha256) == 64
    frame = data[data["as_of"] == data["as_of"].max()].set_index("loan_id").head(5)
    first = score_frame(loaded, frame)
    assert [s.score for s in first] == [s.score for s in score_frame(model, frame)]
    day1, day2 = datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 3, 2, tzinfo=UTC)
    assert save_scores(engine, model_id, day1, first) == 5
    assert save_scores(engine, model_id, day1, first) == 5  # a re-run replaces, never doubles
    worse = [type(s)(s.loan_id, s.score - 100, "E", 0.9, s.reasons) for s in first]
    save_scores(engine, model_id, day2, worse)
    with engine.connect() as conn:
        latest = latest_scores(conn)
        assert set(latest) == {s.loan_id for s in first}
        one = latest[first[0].loan_id]
        assert one.band == "E" and one.pd == 0.9
        assert one.reasons == [r.as_json() for r in first[0].reasons]
        history = score_history(conn, first[0].loan_id)
    assert history == ((int(day2.timestamp()), "E"), (int(day1.timestamp()), first[0].band))
    Path(row.artifact_path).write_bytes(Path(row.artifact_path).read_bytes() + b"x")
    with pytest.raises(StorageError, match="does not match the SHA-256"):
        load_model(engine)


def test_latest_scores_of_more_loans_than_one_statement_binds(
    db_engine: Any, tmp_path: Path, fitted: Any
) -> None:
    from ledger.store import scores as store_scores

    data, model = fitted
    engine = db_engine
    model_id, _ = save_model(engine, model, tmp_path)
    frame = data[data["as_of"] == data["as_of"].max()].set_index("loan_id").head(20)
    save_scores(engine, model_id, datetime(2025, 1, 31, tzinfo=UTC), score_frame(model, frame))
    asked = [*frame.index[:10], *(f"0x{i:064x}" for i in range(10_000, 10_000 + store_scores.IN_LIMIT))]
    with engine.connect() as conn:
        found = latest_scores(conn, asked)
        assert set(found) == set(frame.index[:10])
        assert set(latest_scores(conn, list(frame.index[:3]))) == set(frame.index[:3])
