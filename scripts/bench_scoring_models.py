"""Benchmark: the behaviour score's models over N loans (default 100,000): training (the optbinning
scorecard and the LightGBM challenger, each on its own) and scoring (points, band, PD and the three reason
codes per loan).

The frame is synthetic, of part A's FEATURES shape (every column, NaN where a feature does not apply, a
hidden propensity moving each feature and the label: ledger/scoring/synthetic.py): model timing
depends on rows and columns, not on where the numbers came from; computing the features from the mirror
is the scoring-features section (scripts/bench_scoring.py).

    python scripts/bench_scoring_models.py --loans 100000 --json var/bench/scoring_models.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.scoring.bands import Bands  # noqa: E402
from ledger.scoring.challenger import fit_challenger  # noqa: E402
from ledger.scoring.features import FEATURES  # noqa: E402
from ledger.scoring.model import BehaviourModel, score_frame  # noqa: E402
from ledger.scoring.scorecard import fit_scorecard  # noqa: E402
from ledger.scoring.synthetic import synthetic_frame  # noqa: E402


def frame(loans: int) -> pd.DataFrame:
    return synthetic_frame(loans, seed=1).drop(columns="as_of").set_index("loan_id")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loans", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = frame(args.loans)
    t0 = time.perf_counter()
    card = fit_scorecard(data, data["bad"], FEATURES)
    t1 = time.perf_counter()
    challenger = fit_challenger(data, data["bad"], FEATURES)
    t2 = time.perf_counter()
    model = BehaviourModel(card, challenger, Bands.from_scores(card.score(data)), "simulated", {})
    t3 = time.perf_counter()
    scored = score_frame(model, data.drop(columns="bad"))
    t4 = time.perf_counter()
    challenger.probability(data)
    t5 = time.perf_counter()
    fig = {
        "loans": args.loans,
        "features": len(FEATURES),
        "train_scorecard_s": round(t1 - t0, 2),
        "train_challenger_s": round(t2 - t1, 2),
        "score_s": round(t4 - t3, 2),
        "score_loans_per_s": round(args.loans / (t4 - t3)),
        "challenger_predict_s": round(t5 - t4, 2),
        "scored": len(scored),
    }
    print(json.dumps(fig))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(fig))


if __name__ == "__main__":
    main()
