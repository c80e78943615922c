"""The portfolio simulator (issue 21) drives the real chain; after indexing, the dataset built from the mirror
is learnable: both classes, the label rate rising with the hidden propensity by quintile, and a plain logistic
regression's AUC on a later (out-of-time) period well above chance. The propensities are used here only to
check the data; features and labels never see them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from eth_account import Account
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.chain.deploy import connect, deploy_ledger
from ledger.mirror.indexer import Indexer
from ledger.scoring.features import FEATURE_NAMES
from ledger.scoring.labels import build_dataset
from ledger.scoring.simulator import _Sim, simulate_portfolio
from ledger.store.db import create_db_engine, migrate

pytestmark = pytest.mark.slow

LOANS = 300
MONTHS = 24


def test_the_plan_is_reproducible_from_its_seed(
    private_client: ChainClient, compiled: CompiledContract
) -> None:
    operator = Account.create()
    ledger = connect(private_client, deploy_ledger(private_client, operator, compiled))
    engine = create_db_engine("sqlite://")

    def plan(seed: int) -> list[tuple[str, float, int, int, str]]:
        sim = _Sim(private_client, ledger, operator, engine, loans=30, months=12, seed=seed, progress=None)
        sim.plan(1_800_000_000)
        return [(x.loan_id, x.p, x.open_at, x.principal, x.terms.hash()) for x in sim.loans]

    assert plan(3) == plan(3)
    assert plan(3) != plan(4)


def test_a_simulated_portfolio_is_learnable(
    private_client: ChainClient, compiled: CompiledContract, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    operator = Account.create()
    deployment = deploy_ledger(private_client, operator, compiled)
    ledger = connect(private_client, deployment)
    engine = create_db_engine(f"sqlite:///{tmp_path / 'sim.db'}")
    migrate(engine)
    seen: list[tuple[int, int]] = []
    result = simulate_portfolio(
        private_client,
        ledger,
        operator=operator,
        engine=engine,
        loans=LOANS,
        months=MONTHS,
        seed=7,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(result.loans) == LOANS and result.transactions > 10 * LOANS
    assert (
        seen
        and seen[-1][0] <= seen[-1][1]
        and all(a[0] <= b[0] for a, b in zip(seen, seen[1:], strict=False))
    )
    started = time.perf_counter()
    with Indexer(engine, private_client, deployment) as indexer:
        while indexer.run_once() > 0:
            pass
    indexed = time.perf_counter() - started

    start = datetime.fromtimestamp(result.start, UTC)
    snapshots = [start + timedelta(days=30 * k) for k in range(1, MONTHS)]
    started = time.perf_counter()
    data = build_dataset(engine, snapshots)
    built = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\nsimulator: {LOANS} loans, {MONTHS} months, {result.transactions} tx "
            f"in {result.seconds:.1f} s "
            f"({result.tx_per_second:.0f} tx/s); indexed in {indexed:.1f} s; dataset {len(data)} rows from "
            f"{data['as_of'].nunique()} snapshots in {built:.1f} s; bad rate {data['bad'].mean():.3f}"
        )
    assert set(data["bad"]) == {0, 1}
    assert data["as_of"].max() + timedelta(days=365) <= datetime.fromtimestamp(result.end, UTC)

    # the label rate rises with the hidden propensity, quintile by quintile
    data["p"] = data["loan_id"].map(result.propensities())
    assert data["p"].notna().all()
    rates = data.groupby(pd.qcut(data["p"], 5, labels=False))["bad"].mean()
    assert rates.is_monotonic_increasing, rates.to_dict()
    assert rates.iloc[-1] - rates.iloc[0] > 0.3, rates.to_dict()

    # and the features predict it out of time: train on the earlier snapshots, test on the later ones
    dates = sorted(data["as_of"].unique())
    cut = dates[len(dates) * 6 // 10]
    train, test = data[data["as_of"] < cut], data[data["as_of"] >= cut]
    fill = train[list(FEATURE_NAMES)].median().fillna(0)

    def x(frame: pd.DataFrame) -> np.ndarray:
        return frame[list(FEATURE_NAMES)].fillna(fill).to_numpy()

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x(train), train["bad"])
    auc = roc_auc_score(test["bad"], model.predict_proba(x(test))[:, 1])
    with capsys.disabled():
        print(
            f"simulator: out-of-time logistic AUC {auc:.3f} ({len(train)} train rows, {len(test)} test rows)"
        )
    assert auc > 0.65
