"""The composition root: the one place that builds the running system from settings.

settings -> chain clients -> API services | indexer + monitor + webhook worker. `fundflow up`, `serve` and
`index` all build through here, so a knob set in FUNDFLOW_* (or .env) reaches every command the same way,
and the indexer + monitor + webhooks wiring exists once. Nothing below this package builds its own
collaborators from settings: `ledger` and `api` take what they need as arguments.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from api.services import Services, open_services
from fundflow.cli.console import err_console
from ledger.chain.client import ChainClient
from ledger.chain.deploy import Deployment
from ledger.config import Settings
from ledger.errors import ChainError, FundflowError
from ledger.mirror.indexer import BatchProgress, Indexer
from ledger.monitoring.monitor import Monitor

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ledger.monitoring.webhooks import WebhookWorker

__all__ = ["ApiStack", "build_api", "build_indexer", "chain_client", "start_webhooks"]


def chain_client(settings: Settings, *, request_timeout: float | None = None) -> ChainClient:
    """A client of the configured node. Each long-lived part gets its own (the API's answers a down node
    sooner, `settings.api_rpc_timeout`, so a read-only API stays responsive)."""
    if request_timeout is None:
        return ChainClient(settings.chain_url, tx_timeout=settings.tx_timeout)
    return ChainClient(settings.chain_url, tx_timeout=settings.tx_timeout, request_timeout=request_timeout)


def build_indexer(
    settings: Settings,
    engine: Engine,
    *,
    client: ChainClient | None = None,
    deployment: Deployment | None = None,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> Indexer:
    """The indexer with the monitor running its rules inside every batch's transaction (alerts commit or
    roll back with the rows they rest on)."""
    return Indexer(
        engine,
        client or chain_client(settings),
        deployment or Deployment.load(settings.deployment_file),
        confirmations=settings.confirmations,
        max_reorg_depth=settings.max_reorg_depth,
        poll_interval=settings.poll_interval,
        decode_worker_min_logs=settings.decode_worker_min_logs,
        on_progress=on_progress,
        after_batch=Monitor.from_settings(settings).after_batch,
    )


def start_webhooks(settings: Settings, engine: Engine) -> WebhookWorker | None:
    """The webhook delivery worker, started, when webhook URLs are configured."""
    if not settings.webhook_urls:
        return None
    from ledger.monitoring.webhooks import WebhookWorker

    return WebhookWorker.from_settings(engine, settings).start()


def build_services(settings: Settings) -> Services:
    """What the API works with: its chain client, the ledger contract, the database, keys and directory."""
    return open_services(settings)


def build_api(settings: Settings, services: Services | None = None) -> FastAPI:
    """The ASGI app; it opens its own services in its lifespan unless handed some."""
    from api.app import create_app

    return create_app(settings, services=services)


class ApiStack:
    """`fundflow up`'s process: the indexer following the tip and the API server, each in a thread, sharing
    one database engine."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        self.settings = settings
        self.services = build_services(settings)
        self.stop_event = threading.Event()
        self.indexer = build_indexer(settings, self.services.engine, deployment=self.services.deployment)
        self.webhooks: Any = None
        self.indexer_error: BaseException | None = None
        self._indexer_thread = threading.Thread(target=self._index, name="indexer", daemon=True)
        config = uvicorn.Config(
            build_api(settings, self.services),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def _index(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.indexer.run_forever(self.stop_event, on_outage=self._outage)
            except ChainError as exc:  # e.g. a different chain behind the URL: health says so; keep trying
                self.indexer_error = exc
                self.stop_event.wait(1.0)
            except BaseException as exc:
                self.indexer_error = exc
                err_console.print(f"[bold red]indexer stopped:[/] {exc}", highlight=False)
                return

    def _outage(self, error: BaseException | None, retry_in: float) -> None:
        self.indexer_error = error
        if error is not None and retry_in >= 4:  # say it once the outage is more than a blip
            err_console.print(
                f"[yellow]indexer waiting:[/] {error} (retrying in {retry_in:.0f} s)", highlight=False
            )

    def start(self) -> ApiStack:
        self.indexer.open()
        self._indexer_thread.start()
        self.webhooks = start_webhooks(self.settings, self.services.engine)
        self._server_thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._server_thread.is_alive():
                raise FundflowError(
                    f"the API did not start on {self.url}", hint="is the port taken? FUNDFLOW_API_PORT"
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.stop_event.set()
        self._server_thread.join(timeout=10)
        self._indexer_thread.join(timeout=10)
        if self.webhooks is not None:
            self.webhooks.stop()
        self.indexer.close()
        self.services.close()
