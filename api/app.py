"""The FastAPI application: `create_app(settings)` builds it; the lifespan opens the chain client, the
ledger, the database engine and the keystore (unlocked with the passphrase from env or file)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import docs
from api.errors import install_error_handlers
from api.guards import install_guards, restore_recursion_limit
from api.routes import (
    alerts,
    attestations,
    audit,
    class_migration,
    classifications,
    collateral,
    dashboard,
    documents,
    guarantees,
    health,
    loans,
    lots,
    participants,
    payments,
    preservation,
    register,
    repayments,
    risk,
    scores,
    visits,
    vouchers,
    writeoff,
)
from api.services import Services, open_services
from ledger.config import Settings, get_settings

__all__ = ["create_app"]

DESCRIPTION = """Fundflow: a fund-flow ledger for post-loan management.

**Amounts are decimal strings in yuan**: `"amount": "1000.00"` is CNY 1,000.00 (at most two decimals, no
sign, exponent or thousands separator). A JSON number is refused with a 422 that shows the string for each
reading (`1000` could mean CNY 10.00 in fen or CNY 1,000.00). Answers keep every amount in fen (`amount`)
and add the yuan string beside it (`amount_yuan`) with the `currency`; every block number (`block_number`)
gets its block's time (`block_time`, ISO 8601 in the bank's time zone, `FUNDFLOW_BANK_TIMEZONE`).

Banks open loans and disburse; enterprises pay onward out of the money they hold and confirm or dispute
what they received; auditors read and attest trails. Every write is a signed transaction on the ledger
chain; every read comes from the indexer's SQL mirror.

* Authenticate with `Authorization: Bearer <token>` (`fundflow tokens create NAME`).
* Send an `Idempotency-Key` header on every POST; add `?wait=true` to read your own write.
"""


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The API. Pass `services` to reuse already-open objects (tests, `fundflow up`)."""
    # A dependency (py_ecc) raised Python's recursion limit to 100,000 at import; with it a deeply nested
    # body overflows the C stack and kills the process. Every server is built here, so put it back here.
    restore_recursion_limit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened = services if services is not None else open_services(settings or get_settings())
        app.state.services = opened
        try:
            yield
        finally:
            if services is None:
                opened.close()

    app = FastAPI(
        title="Fundflow API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load Swagger UI / ReDoc from a CDN: api/docs.py serves it instead
        redoc_url=None,
    )
    install_error_handlers(app)
    install_guards(app, services.settings if services is not None else settings or get_settings())
    for module in (
        health,
        participants,
        loans,
        lots,
        payments,
        repayments,
        classifications,
        collateral,
        attestations,
        audit,
        documents,
        alerts,
        risk,
        visits,
        guarantees,
        writeoff,
        preservation,
        register,
    ):
        app.include_router(module.router)
    app.include_router(risk.proposals_router)  # maker-checker approvals (issue 18)
    app.include_router(class_migration.router)  # class migration, 迁徙率 (issue 18)
    app.include_router(scores.router)  # the behaviour score by band (issue 21)
    app.include_router(scores.models_router)  # its model card (issue 21)
    app.include_router(vouchers.router)  # supply-chain vouchers (issue 22)
    dashboard.install(app)
    docs.install(app)
    return app
