"""The behaviour models on a synthetic learnable dataset: the scorecard and challenger learn it out of time,
the evaluation metrics equal hand-computed values, the reasons name the features that cost points, bands
order scores, and the model card carries the product's own figures."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from score_frames import SPECS, synthetic_dataset

from ledger.scoring.bands import Bands, is_worse
from ledger.scoring.evaluation import auc, ks, out_of_time_split, psi, psi_from_counts
from ledger.scoring.model import score_frame, train
from ledger.scoring.modelcard import SIMULATED_WARNING, build_card, card_markdown
from ledger.scoring.reasons import format_value
from ledger.scoring.scorecard import odds_to_score

LABEL = {"horizon_days": 365, "dpd_threshold": 90}


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    data = synthetic_dataset()
    return data, train(data, SPECS, trained_on="simulated", label=LABEL)


def test_scorecard_and_challenger_learn_the_synthetic_frame_out_of_time(trained) -> None:  # type: ignore[no-untyped-def]
    _, model = trained
    perf = model.facts["performance"]
    assert perf["scorecard"]["test"]["auc"] > 0.7
    assert perf["challenger"]["test"]["auc"] > 0.7
    assert perf["scorecard"]["test"]["ks"] > 0.3


def test_the_split_keeps_the_newest_snapshots_for_test(trained) -> None:  # type: ignore[no-untyped-def]
    data, model = trained
    split = out_of_time_split(data)
    assert split.dev["as_of"].max() < split.test["as_of"].min()
    assert split.test["as_of"].max() == data["as_of"].max()
    assert model.facts["test"]["rows"] == len(split.test) == 2 * 600


def test_a_higher_score_means_a_lower_probability_of_going_bad(trained) -> None:  # type: ignore[no-untyped-def]
    data, model = trained
    frame = data.set_index("loan_id").head(300)
    scores = model.scorecard.score(frame)
    pds = model.scorecard.probability(frame)
    assert np.corrcoef(scores, pds)[0, 1] < -0.9
    assert model.scorecard.points(frame).sum(axis=1).to_numpy() == pytest.approx(scores)


def test_pdo_scaling_doubles_the_odds_every_20_points() -> None:
    assert odds_to_score(50) == pytest.approx(600)
    assert odds_to_score(100) - odds_to_score(50) == pytest.approx(20)


def test_ks_equals_the_hand_computed_gap() -> None:
    # goods at 0.1, 0.2, 0.6; bads at 0.4, 0.7, 0.8: threshold 0.7 catches 2/3 bads and 0 goods → 2/3
    y = [0, 0, 0, 1, 1, 1]
    risk = [0.1, 0.2, 0.6, 0.4, 0.7, 0.8]
    assert ks(y, risk) == pytest.approx(2 / 3)
    assert auc(y, risk) == pytest.approx(8 / 9)


def test_psi_equals_the_hand_computed_sum() -> None:
    expected = math.fsum([(0.4 - 0.5) * math.log(0.4 / 0.5), (0.6 - 0.5) * math.log(0.6 / 0.5)])
    assert psi_from_counts([50, 50], [40, 60]) == pytest.approx(expected)
    assert psi_from_counts([10, 10], [10, 10]) == 0.0
    same = np.linspace(0, 1, 1000)
    assert psi(same, same) == pytest.approx(0.0)
    assert psi(same, same + 0.5) > 0.25


def test_reason_one_is_the_only_bad_feature() -> None:
    data = synthetic_dataset()
    model = train(data, SPECS, trained_on="simulated", label=LABEL)
    good = {
        "days_past_due_now": 0.0,
        "late_instalments_12m": 0.0,
        "misused_share": 0.0,
        "collateral_cover": 2.5,
    }
    for spec in SPECS:
        bad_value = 0.2 if spec.risk_when == "low" else {"days_past_due_now": 45.0,
                                                          "late_instalments_12m": 6.0,
                                                          "misused_share": 0.6}[spec.name]  # fmt: skip
        loan = pd.DataFrame([{**good, spec.name: bad_value}], index=pd.Index(["0xabc"], name="loan_id"))
        (scored,) = score_frame(model, loan)
        assert scored.reasons, spec.name
        first = scored.reasons[0]
        assert first.feature == spec.name
        text, _ = format_value(bad_value, spec.unit)
        assert first.en == f"{spec.en}: {text}" and first.zh == f"{spec.zh}：{text}"
        assert [r.feature for r in scored.reasons] == [spec.name]  # the others sit in their best bins
    clean = pd.DataFrame([good], index=pd.Index(["0xdef"], name="loan_id"))
    assert score_frame(model, clean)[0].reasons == []


def test_the_reason_for_45_days_past_due_reads_like_a_banker() -> None:
    assert format_value(45.0, "days") == ("45", "45")
    assert format_value(0.25, "share") == ("25%", "25%")
    assert format_value(float("nan"), "ratio") == ("none recorded", "无记录")
    assert format_value(0.0007, "hours") == ("0.0007", "0.0007")
    assert format_value(217.41, "hours") == ("217.4", "217.4")
    assert format_value(1.8, "value / outstanding") == ("1.80", "1.80")


def test_bands_follow_the_development_quintiles_and_a_is_best() -> None:
    bands = Bands.from_scores(np.arange(100, dtype=float))
    assert bands.cutoffs == (19.8, 39.6, 59.4, 79.2)
    assert [bands.band(s) for s in (0, 19.8, 40, 60, 99)] == ["E", "D", "C", "B", "A"]
    assert is_worse("D", "C") and not is_worse("B", "C")
    with pytest.raises(ValueError, match="four ascending"):
        Bands((3.0, 2.0, 1.0, 0.0))


def test_the_card_of_a_simulated_model_says_so_and_carries_its_own_figures(trained) -> None:  # type: ignore[no-untyped-def]
    _, model = trained
    card = build_card(model, model_id=7, artifact_sha256="ab" * 32)
    text = card_markdown(card)
    assert card["limits"][0] == SIMULATED_WARNING
    assert SIMULATED_WARNING in text
    auc_test = model.facts["performance"]["scorecard"]["test"]["auc"]
    assert f"{auc_test:.3f}" in text
    assert [row["band"] for row in card["calibration"]] == ["A", "B", "C", "D", "E"]
    assert sum(row["count"] for row in card["calibration"]) == model.facts["test"]["rows"]
    assert {f["name"] for f in card["features"]} == {s.name for s in SPECS}
    assert "当前逾期天数" in text


def test_training_on_one_snapshot_is_refused_with_the_reason() -> None:
    data = synthetic_dataset(snapshots=1)
    with pytest.raises(ValueError, match="at least two snapshot dates"):
        train(data, SPECS, trained_on="simulated", label=LABEL)


def test_ctrl_c_after_fitting_is_still_pythons_keyboard_interrupt(tmp_path: Path) -> None:
    """OR-Tools (inside optbinning) installs a SIGINT handler that ends the process at once: `fundflow up`
    would leave its chain node running after Ctrl-C. fit_scorecard puts Python's handler back."""
    script = tmp_path / "fit_then_interrupt.py"
    script.write_text(
        "import os, signal, sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from score_frames import SPECS, synthetic_dataset\n"
        "from ledger.scoring.scorecard import fit_scorecard\n"
        "d = synthetic_dataset(loans=300, snapshots=2)\n"
        "fit_scorecard(d, d['bad'], SPECS)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    print('KeyboardInterrupt')\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
        # Ctrl-C's default action, as a terminal's foreground job has it: a suite started in the background
        # from a script (CI) inherits SIGINT ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert (done.returncode, done.stdout.strip()) == (0, "KeyboardInterrupt"), done.stderr
