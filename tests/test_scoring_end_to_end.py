"""The whole behaviour score on a simulated history: part A's simulator drives a private chain, the real
indexer mirrors it, `train_model` builds the dataset from the mirror, fits out of time and stores the model;
held-out AUC on the most recent period is well above chance (the generative model makes it learnable);
`apply_scores` scores the open loans and the card says the data was simulated."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import make_world

from ledger.chain.client import ChainClient
from ledger.chain.compiler import CompiledContract
from ledger.config import Settings
from ledger.mirror.indexer import Indexer
from ledger.scoring.modelcard import SIMULATED_WARNING
from ledger.scoring.pipeline import apply_scores, evaluate_model, train_model
from ledger.scoring.simulator import simulate_portfolio
from ledger.store.db import create_db_engine, migrate
from ledger.store.scores import latest_scores

pytestmark = pytest.mark.slow


def test_a_model_trained_on_the_simulated_mirror_predicts_its_out_of_time_period(
    private_client: ChainClient, compiled: CompiledContract, tmp_path: Path
) -> None:
    world = make_world(private_client, compiled)
    url = f"sqlite:///{tmp_path / 'sim.db'}"
    engine = create_db_engine(url)
    migrate(engine)
    try:
        started = time.perf_counter()
        sim = simulate_portfolio(
            private_client, world.ledger, operator=world.cast.operator, engine=engine, loans=240, months=24,
            seed=11,
        )  # fmt: skip
        with Indexer(engine, private_client, world.deployment) as indexer:
            while indexer.run_once() > 0:
                pass
        simulated = time.perf_counter() - started
        settings = Settings(env="test", data_dir=tmp_path, database_url=url, rpc_url=private_client.rpc_url)
        model_id, card = train_model(engine, settings, trained_on="simulated")
        perf = card["performance"]
        dev, test = card["data"]["development"], card["data"]["test"]
        print(
            f"\n{len(sim.loans)} loans x 24 months: {sim.transactions} tx in {simulated:.0f} s; dev "
            f"{dev['rows']} rows ({dev['bad_rate']:.1%} bad), test {test['rows']} rows "
            f"({test['bad_rate']:.1%} bad); left out {[f['name'] for f in card['features_left_out']]}; "
            f"scorecard AUC {perf['scorecard']['test']['auc']:.3f} KS {perf['scorecard']['test']['ks']:.3f}; "
            f"challenger AUC {perf['challenger']['test']['auc']:.3f}"
        )
        assert card["data"]["development"]["to"] < card["data"]["test"]["from"]
        assert perf["scorecard"]["test"]["auc"] > 0.7
        assert perf["challenger"]["test"]["auc"] > 0.7
        assert card["limits"][0] == SIMULATED_WARNING

        result = apply_scores(engine, settings)
        assert result.model_id == model_id and result.scored > 0
        with engine.connect() as conn:
            stored = latest_scores(conn)
        assert len(stored) == result.scored
        assert all(row.band in "ABCDE" and len(row.reasons) <= 3 for row in stored.values())
        md, js, written = evaluate_model(engine, tmp_path / "card.md", german=False)
        assert md.read_text().startswith("# Behaviour score") and js.is_file()
        assert written["model_id"] == model_id
    finally:
        engine.dispose()
