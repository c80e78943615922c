"""Helpers for the post-loan file tests (issue 19): the real app over a fresh deployment, the real indexer
with the monitoring rules after each batch following the chain in a thread, on the `db_url` database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from api_support import Api, build_services
from conftest import World
from fastapi.testclient import TestClient

from api.app import create_app
from ledger.chain.client import ChainClient
from ledger.mirror.indexer import Indexer
from ledger.monitoring.monitor import Monitor
from ledger.monitoring.rules import Thresholds

DAY = 86_400
T = TypeVar("T")


class MonitoredIndexer:
    """The real indexer with the monitor after every batch, following the tip in a thread."""

    def __init__(self, indexer: Indexer) -> None:
        self.indexer = indexer
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="file-indexer")

    def _run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.indexer.run_forever(self.stop_event)
            except Exception:  # the node paused: keep trying, like a supervisor would
                self.stop_event.wait(0.1)

    def start(self) -> MonitoredIndexer:
        self.indexer.open()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.indexer.close()


@dataclass
class FileSite:
    api: Api
    world: World

    def alerts(self, loan: str, rule: str) -> list[dict[str, Any]]:
        r = self.api.get("bank", "/v1/alerts", params={"loan": loan, "rule": rule, "limit": 500})
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    def states(self, loan: str, rule: str) -> list[str]:
        return [a["state"] for a in self.alerts(loan, rule)]

    def advance(self, days: float) -> None:
        """Move the node's clock forward and mine a block at the new time (private nodes only)."""
        client = self.world.ledger.client
        client.rpc("evm_increaseTime", [int(days * DAY)])
        client.rpc("evm_mine")

    def sync(self) -> None:
        """Wait until the indexer (and so the monitor) has processed the chain's newest block."""
        from api.writes import wait_for_block

        assert wait_for_block(self.api.services, self.world.ledger.client.block_number(), timeout=30)

    def chain_time(self) -> int:
        return int(self.world.ledger.client.get_header().timestamp)


def eventually(check: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """`check()` once it is truthy (the indexer thread catches up), else fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what} (last: {value!r})")
        time.sleep(0.1)


@contextmanager
def file_site(world: World, client: ChainClient, db_url: str, tmp_path: Path) -> Iterator[FileSite]:
    services, tokens, accounts = build_services(world, client, tmp_path, db_url)
    indexer = Indexer(
        services.engine,
        ChainClient(client.rpc_url),
        world.deployment,
        poll_interval=0.02,
        after_batch=Monitor(Thresholds(), sweep_seconds=1).after_batch,
    )
    running = MonitoredIndexer(indexer).start()
    try:
        with TestClient(create_app(services=services)) as http:
            api = Api(http, services, world, tokens, accounts, running)  # type: ignore[arg-type]
            yield FileSite(api, world)
    finally:
        running.stop()
        services.engine.dispose()
