"""The behaviour score on the product surface: scored on a real chain's mirror (the model fitted on a
synthetic frame of part A's features, the loans real), shown on the loan answer and page to its lender and
auditors only (never a score field for its borrower or a supplier), the portfolio by band, the model card."""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import Api, dashboard_sign_in
from score_frames import feature_dataset

from ledger.config import get_settings
from ledger.monitoring.monitor import Monitor
from ledger.scoring.features import FEATURES
from ledger.scoring.model import LoanScore, train
from ledger.scoring.pipeline import apply_scores
from ledger.scoring.reasons import Reason
from ledger.scoring.store import latest_scores, save_model, save_scores

pytestmark = pytest.mark.slow

SCORE_WORDS = ("behaviour_score", "behaviour-score", "Behaviour score", "行为评分", "score_band")


def _scored(api: Api) -> Any:
    api.open_loan(loan_number="LN-2026-0101", principal="10000.00")
    api.disburse("LN-2026-0101", "supplier", "4000.00")
    api.open_loan(loan_number="LN-2026-0102", principal="3000.00")
    api.disburse("LN-2026-0102", "borrower", "2500.00", purpose=4)
    model = train(feature_dataset(), FEATURES, trained_on="simulated", label={"horizon_days": 365})
    model_id, _ = save_model(api.services.engine, model, api.services.settings.data_dir)
    return model_id, apply_scores(api.services.engine, api.services.settings)


def test_lender_and_auditor_see_the_score_and_borrower_and_supplier_never_do(api: Api) -> None:
    model_id, result = _scored(api)
    assert result.scored == 2 and result.model_id == model_id and sum(result.bands.values()) == 2
    for who in ("bank", "auditor"):
        r = api.get(who, "/v1/loans/LN-2026-0101")
        assert r.status_code == 200, r.text
        score = r.json()["behaviour_score"]
        assert score["band"] in "ABCDE" and 0 < score["pd"] < 1 and score["model_id"] == model_id
        assert score["model_card"] == "/v1/score-models/latest"
        assert len(score["reasons"]) <= 3
        for reason in score["reasons"]:
            assert {"feature", "value", "points_lost", "en", "zh"} <= set(reason)
            assert reason["en"].count(":") == 1 and "：" in reason["zh"]
    for who in ("borrower", "supplier"):
        r = api.get(who, "/v1/loans/LN-2026-0101")
        assert r.status_code == 200, r.text
        assert not any(w in r.text for w in SCORE_WORDS), (who, r.text)
    assert api.get("other_bank", "/v1/loans/LN-2026-0101").status_code == 404
    listed = api.get("bank", "/v1/loans")
    assert listed.status_code == 200 and "behaviour_score" not in listed.text

    for who, sees in (("bank", True), ("auditor", True), ("borrower", False), ("supplier", False)):
        dashboard_sign_in(api, who)
        page = api.http.get("/dashboard/loans/LN-2026-0101")
        assert page.status_code == 200, page.text
        assert ('id="behaviour-score"' in page.text) is sees, who
        if not sees:
            assert not any(w in page.text for w in SCORE_WORDS), who


def test_portfolio_by_band_and_the_model_card(api: Api) -> None:
    r = api.get("bank", "/v1/score-models/latest")
    assert r.status_code == 200 and r.json()["card"] is None and "fundflow score train" in r.json()["message"]
    model_id, result = _scored(api)
    r = api.get("bank", "/v1/portfolio/scores")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["scored_loans"] == data["open_loans"] == 2 and data["model_id"] == model_id
    by_band = {b["band"]: b for b in data["bands"]}
    assert sum(b["loans"] for b in data["bands"]) == 2 and by_band["unscored"]["loans"] == 0
    assert sum(int(b["outstanding"]) for b in data["bands"]) == 650_000  # 4,000 + 2,500 yuan in fen
    for band, count in result.bands.items():
        assert by_band[band]["loans"] == count
    assert api.get("borrower", "/v1/portfolio/scores").status_code == 403
    assert api.get("other_bank", "/v1/portfolio/scores").json()["open_loans"] == 0

    card = api.get("auditor", "/v1/score-models/latest").json()
    assert card["model_id"] == model_id and card["trained_on"] == "simulated"
    assert card["card"]["limits"][0].startswith("Trained and evaluated on simulated data")
    assert api.get("supplier", "/v1/score-models/latest").status_code == 403

    dashboard_sign_in(api, "bank")
    page = api.http.get("/dashboard/scores")
    assert page.status_code == 200 and 'id="chart-by-band"' in page.text and "<script" not in page.text
    card_page = api.http.get("/dashboard/score-models/latest")
    assert card_page.status_code == 200 and "simulated data" in card_page.text


def test_a_worse_band_raises_the_alert_on_the_loan(api: Api) -> None:
    model_id, _ = _scored(api)
    engine = api.services.engine
    loan_id = api.get("bank", "/v1/loans/LN-2026-0101").json()["loan_id"]
    with engine.connect() as conn:
        first = latest_scores(conn)[loan_id]
    better, worse = ("A", "E") if first.band != "A" else ("A", "D")
    later = first.as_of.replace(tzinfo=UTC) + timedelta(days=30)
    earlier = first.as_of.replace(tzinfo=UTC) - timedelta(days=30)
    reasons = [Reason(**r) for r in first.reasons]
    save_scores(engine, model_id, earlier, [LoanScore(loan_id, 700.0, better, 0.01, reasons)])
    save_scores(engine, model_id, later, [LoanScore(loan_id, 450.0, worse, 0.6, reasons)])
    with engine.begin() as conn:
        Monitor.from_settings(api.services.settings).evaluate(conn, [loan_id])
    alerts = api.get("bank", "/v1/alerts", params={"rule": "score_band_worse"}).json()["items"]
    mine = [a for a in alerts if a["loan_id"] == loan_id and a["rule"] == "score_band_worse"]
    assert len(mine) == 1, alerts
    assert mine[0]["details"]["to_band"] == worse and mine[0]["details"]["from_band"] in "ABCDE"
    assert f"降至{worse}" in mine[0]["title"]
    assert api.get("bank", "/v1/loans/LN-2026-0101").json()["behaviour_score"]["band"] == worse


def test_the_score_commands_evaluate_and_apply_on_the_mirror(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from fundflow.cli.main import app

    model_id, _ = _scored(api)
    monkeypatch.setenv("FUNDFLOW_DATABASE_URL", api.services.settings.database_url)
    monkeypatch.setenv("FUNDFLOW_DATA_DIR", str(api.services.settings.data_dir))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["score", "evaluate", "--out", str(tmp_path / "card.md")])
        assert out.exit_code == 0, out.output
        assert f"model card of model {model_id} written to {tmp_path / 'card.md'}" in out.output
        assert "German credit check of the machinery: AUC 0.80" in out.output
        assert (tmp_path / "card.json").is_file()
        assert "Trained and evaluated on simulated data" in (tmp_path / "card.md").read_text()
        out = runner.invoke(app, ["score", "apply"])
        assert out.exit_code == 0, out.output
        assert "2 open loan(s) scored" in out.output and f"with model {model_id}" in out.output
        out = runner.invoke(app, ["score", "train"])
        assert out.exit_code == 1
        assert "too little history to train" in out.output and "hint:" in out.output
    finally:
        get_settings.cache_clear()
