"""The model card the product produces (`fundflow score evaluate`): JSON for machines, Markdown for people,
both from one dict built out of a trained model's own facts. No figure in it is written by hand.

It states the data dates (snapshot range, development and test periods, rows, loans, bad rates), the label,
the features in EN/ZH with their information value and stability, the binning (bins, bad rates, points),
the scorecard and the challenger side by side out of time, the score's PSI, calibration by band, the bands,
the German-credit check of the machinery, and the limits, among them, for a model trained on simulated
data, that its figures show the pipeline works, not how well it predicts real loans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.scoring.model import BehaviourModel
from ledger.scoring.scorecard import BASE_ODDS, BASE_SCORE, PDO

__all__ = ["SIMULATED_WARNING", "build_card", "card_markdown"]

SIMULATED_WARNING = (
    "Trained and evaluated on simulated data: these figures show the pipeline works, not how well it "
    "predicts real loans. (模型以模拟数据训练和评估：以下数字只说明流程可用，不代表对真实贷款的预测能力。)"
)


def _limits(model: BehaviourModel) -> list[str]:
    out = []
    if model.trained_on == "simulated":
        out.append(SIMULATED_WARNING)
    test = model.facts["test"]
    out += [
        f"The test period holds {test['rows']} rows of {test['loans']} loans with {test['bad']} bad; "
        "AUC and KS on so few bad loans move by several points from one sample to the next.",
        "Rows of the same loan at different snapshots are not independent; the development figures are "
        "optimistic for that reason and are shown only beside the out-of-time ones.",
        f"The label needs {model.label.get('horizon_days', 365)} days of observed history after a snapshot, "
        "so the most recent months of the mirror are in no label yet: the model always lags the portfolio "
        "by the horizon.",
        "The challenger is judged, not used: scores, bands and reasons come from the scorecard.",
        "The bands' cut-offs are development quintiles (unless set), not a calibrated risk appetite.",
    ]
    return out


def build_card(
    model: BehaviourModel,
    *,
    model_id: int | None = None,
    artifact_sha256: str | None = None,
    german: dict[str, Any] | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    f = model.facts
    return {
        "title": "Behaviour score (B卡) model card",
        "model_id": model_id,
        "created": (created or datetime.now(UTC)).isoformat(timespec="seconds"),
        "trained_on": model.trained_on,
        "artifact_sha256": artifact_sha256,
        "label": model.label,
        "data": {"snapshots": f["snapshots"], "development": f["development"], "test": f["test"]},
        "scaling": {
            "base_score": BASE_SCORE,
            "base_odds": BASE_ODDS,
            "pdo": PDO,
            "meaning": f"{BASE_SCORE} points = good:bad odds {BASE_ODDS}:1; every {PDO} points "
            "more doubles the odds; higher is better",
        },  # fmt: skip
        "features": f["features"],
        "features_left_out": f.get("left_out", []),
        "bins": f["bins"],
        "performance": f["performance"],
        "psi": f["psi"],
        "calibration": f["calibration"],
        "bands": f["bands"],
        "german_credit": german,
        "limits": _limits(model),
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.1%}"


def _cut(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def card_markdown(card: dict[str, Any]) -> str:
    d, perf = card["data"], card["performance"]
    lines = [f"# {card['title']}", ""]
    if card["trained_on"] == "simulated":
        lines += [f"> **{card['limits'][0]}**", ""]
    lines += [
        f"- Model id: {card['model_id']}; created {card['created']}; trained on: {card['trained_on']} data",
        f"- Artifact SHA-256: `{card['artifact_sha256']}`",
        f"- Label: bad = {card['label'].get('dpd_threshold', 90)}+ days past due within "
        f"{card['label'].get('horizon_days', 365)} days after the snapshot",
        f"- Scaling: {card['scaling']['meaning']}",
        "",
        "## Data",
        "",
        "| period | from | to | snapshots | rows | loans | bad | bad rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("development", "test"):
        p = d[name]
        lines.append(
            f"| {name} | {p['from']} | {p['to']} | {p['snapshots']} | {p['rows']} | {p['loans']} | "
            f"{p['bad']} | {_pct(p['bad_rate'])} |"
        )
    lines += [
        "",
        "## Performance out of time (test period)",
        "",
        "| model | AUC test | KS test | AUC development | KS development |",
        "|---|---|---|---|---|",
    ]
    for name in ("scorecard", "challenger"):
        m = perf[name]
        lines.append(
            f"| {name} | {m['test']['auc']:.3f} | {m['test']['ks']:.3f} | "
            f"{m['development']['auc']:.3f} | {m['development']['ks']:.3f} |"
        )
    lines += [
        "",
        f"Score PSI, development vs test: **{card['psi']['score']:.3f}** ({card['psi']['label']}; "
        "< 0.10 stable, 0.10–0.25 watch, > 0.25 shifted).",
        "",
        "## Calibration by band (test period)",
        "",
        "| band | score from | below | rows | bad | predicted bad rate | observed bad rate |",
        "|---|---|---|---|---|---|---|",
    ]
    cuts = {b["band"]: b for b in card["bands"]}
    for row in card["calibration"]:
        b = cuts[row["band"]]
        lines.append(
            f"| {row['band']} | {_cut(b['from'])} | {_cut(b['below'])} | {row['count']} | {row['bad']} | "
            f"{_pct(row['predicted_bad_rate'])} | {_pct(row['observed_bad_rate'])} |"
        )
    lines += [
        "",
        "## Features",
        "",
        "| feature | English | 中文 | unit | risky when | IV | PSI |",
        "|---|---|---|---|---|---|---|",
    ]
    for ft in card["features"]:
        lines.append(
            f"| `{ft['name']}` | {ft['en']} | {ft['zh']} | {ft['unit']} | {ft['risk_when']} | "
            f"{ft['information_value']:.3f} | {ft['psi']:.3f} ({ft['psi_label']}) |"
        )
    for ft in card.get("features_left_out", []):
        lines.append(f"| `{ft['name']}` | {ft['en']} | {ft['zh']} | left out: {ft['why']} | | | |")
    lines += ["", "## Bins and points", "", "| feature | bin | rows | bad rate | WoE | points |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for b in card["bins"]:
        lines.append(
            f"| `{b['feature']}` | {b['bin']} | {b['count']} | {_pct(b['bad_rate'])} | {b['woe']:.3f} | "
            f"{b['points']:.1f} |"
        )
    g = card.get("german_credit")
    if g:
        lines += [
            "",
            "## The machinery on real loans: German credit",
            "",
            f"{g['dataset']}: {g['rows']} loans, bad rate {_pct(g['bad_rate'])}, {g['split']}. "
            f"Holdout ({g['holdout_rows']} loans): **AUC {g['auc']:.3f}, KS {g['ks']:.3f}**; published range "
            f"for a scorecard on this dataset: AUC {g['published_auc'][0]:.2f}–{g['published_auc'][1]:.2f}, "
            f"KS {g['published_ks'][0]:.2f}–{g['published_ks'][1]:.2f}.",
        ]
    lines += ["", "## Limits", ""] + [f"- {limit}" for limit in card["limits"]]
    return "\n".join(lines) + "\n"
