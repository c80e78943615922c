"""Running a write: idempotency, sending through the ledger, and optionally waiting for the mirror.

Idempotency: a (caller, key) row is inserted before anything is sent; the database's unique constraint
makes exactly one of many concurrent identical requests the sender. The others wait for its stored answer
and return it. The same key with a different body is a 409.

Every transaction is signed first and stored in the row (hash and raw bytes) before it is broadcast: the
write's action is handed the ledger journaled into the row (`LedgerContract.journaled`), and only sends made
through that view are recorded. If the node fails before anything was signed, the reservation is dropped and
a retry sends. If it fails after (the transaction may or may not have reached the chain), the row is left
"unconfirmed" with its transactions, and a retry with the same key looks them up by hash and rebroadcasts the
same bytes if the node lost them: the write lands at most once, never as a second transaction.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session

from api.deps import Caller, IdempotencyKeyDep, ParticipantDep, ServicesDep, SessionDep, WaitDep
from api.errors import RETRY_AFTER_SECONDS, error_response
from api.services import Services, documents
from ledger.chain.client import TxResult
from ledger.chain.contract import LedgerContract
from ledger.chain.journal import SendJournal, SignedTx
from ledger.chain.rpc import RpcError
from ledger.errors import ChainError, ConflictError, FundflowError
from ledger.mirror.read import Mirror
from ledger.store.offchain import IdempotencyRecord, canonical_json, remember_signer

__all__ = ["Outcome", "Write", "WriteDep", "get_write", "run_write", "wait_for_block"]

log = logging.getLogger(__name__)

idem_t: sa.Table = IdempotencyRecord.__table__  # type: ignore[attr-defined]

PENDING_WAIT_SECONDS = 120.0

# The idempotency statements, built once: the values travel as parameters, so SQLAlchemy neither rebuilds
# nor re-keys a statement per request (that cost more than SQLite's commit). Columns named in the
# parameters become the UPDATE's SET clause; the row is addressed by the w_* parameters.
_ROW = sa.and_(idem_t.c.caller == sa.bindparam("w_caller"), idem_t.c.key == sa.bindparam("w_key"))
_INSERT = sa.insert(idem_t)
_SELECT = sa.select(idem_t).where(_ROW)
_UPDATE = sa.update(idem_t).where(_ROW)
_DELETE = sa.delete(idem_t).where(_ROW)
_TAKE_OVER = (
    sa.update(idem_t)
    .where(idem_t.c.id == sa.bindparam("w_id"), idem_t.c.state == "unconfirmed")
    .values(state="pending", created_at=sa.bindparam("w_now"))
)
# A pending row whose lease ran out: its sender died (a replica killed mid-write). created_at is the time the
# key was last claimed; taking it over claims it anew, so of several retries exactly one resumes.
_TAKE_OVER_STALE = (
    sa.update(idem_t)
    .where(
        idem_t.c.id == sa.bindparam("w_id"),
        idem_t.c.state == "pending",
        idem_t.c.created_at < sa.bindparam("w_cutoff"),
    )
    .values(created_at=sa.bindparam("w_now"))
)


# Journal a write's transactions only while its claim on the key holds (created_at still the time this
# process claimed it); each record renews the claim, so the lease runs from the write's last progress.
_RECORD_CLAIMED = (
    sa.update(idem_t)
    .where(_ROW, idem_t.c.state == "pending", idem_t.c.created_at == sa.bindparam("w_claimed"))
    .values(txs=sa.bindparam("w_txs"), created_at=sa.bindparam("w_now"))
)


@dataclass
class _Claim:
    """This process's hold on an Idempotency-Key: when it was taken (or last renewed), and whether a retry
    took it over because the lease ran out while this process was stalled."""

    at: datetime | None = None
    lost: bool = False


def _row(caller: Caller, key: str) -> dict[str, str]:
    return {"w_caller": caller.address, "w_key": key}


def _update(services: Services, caller: Caller, key: str, **values: Any) -> None:
    with services.engine.begin() as conn:
        conn.execute(_UPDATE, {**_row(caller, key), **values})


@dataclass
class Outcome:
    """What an action produced: the transaction and anything the caller wants echoed."""

    tx: TxResult
    extra: dict[str, Any] = field(default_factory=dict)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def result_body(outcome: Outcome, mirrored: bool) -> dict[str, Any]:
    tx = outcome.tx
    return {
        "tx_hash": tx.tx_hash,
        "block_number": tx.block_number,
        "block_hash": tx.block_hash,
        "gas_used": tx.gas_used,
        "events": [{"name": e.name, "log_index": e.log_index, "args": _jsonable(e.args)} for e in tx.events],
        "mirrored": mirrored,
        **outcome.extra,
    }


def wait_for_block(services: Services, block_number: int, timeout: float | None = None) -> bool:
    """Wait until the indexer's checkpoint reaches `block_number`; False on timeout."""
    deadline = time.monotonic() + (services.settings.api_wait_timeout if timeout is None else timeout)
    delay = 0.01
    while True:
        with services.engine.connect() as conn:
            checkpoint = Mirror(conn).checkpoint()
        if checkpoint is not None and checkpoint.block_number >= block_number:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def request_hash(method: str, path: str, body: BaseModel | dict[str, Any] | None) -> str:
    payload = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return hashlib.sha256(
        method.encode() + b" " + path.encode() + b"\n" + canonical_json(payload)
    ).hexdigest()


def _reserve(
    services: Services, caller: Caller, key: str, digest: str, claim: _Claim
) -> dict[str, Any] | None:
    """Reserve the key; None if we are the sender of a new request, the row with state "resume" if we take
    over an unconfirmed one (its transactions were signed, their fate unknown), else the stored row once it
    is done. `claim.at` is set when the key is ours."""
    deadline = time.monotonic() + PENDING_WAIT_SECONDS
    while True:
        try:
            created = _created()
            with services.engine.begin() as conn:
                conn.execute(
                    _INSERT,
                    {"caller": caller.address, "key": key, "request_hash": digest, "state": "pending"}
                    | created,
                )
            claim.at = created["created_at"]
            return None
        except sa.exc.IntegrityError:
            pass
        with services.engine.connect() as conn:
            row = conn.execute(_SELECT, _row(caller, key)).first()
        if row is None:  # the sender gave the key back (chain unreachable): try to take it
            continue
        if row.request_hash != digest:
            raise ConflictError(
                f"The Idempotency-Key {key!r} was already used for a different request.",
                hint="Use a new key for a new request; resend the original body to get the original answer.",
            )
        if row.state == "done":
            return dict(row._mapping)
        if row.state == "unconfirmed":
            now = datetime.now(UTC)
            with services.engine.begin() as conn:
                taken = conn.execute(_TAKE_OVER, {"w_id": row.id, "w_now": now}).rowcount
            if taken == 1:
                claim.at = now
                return dict(row._mapping) | {"state": "resume"}
            continue
        if row.state == "pending" and _lease_ran_out(services, row.created_at):
            # Its sender is gone (a replica killed mid-write): every transaction it signed was journaled
            # before broadcast, so resuming resends exactly those, and a sender that signed none sent none.
            now = datetime.now(UTC)
            cutoff = now - timedelta(seconds=services.settings.idempotency_lease)
            with services.engine.begin() as conn:
                taken = conn.execute(
                    _TAKE_OVER_STALE, {"w_id": row.id, "w_cutoff": cutoff, "w_now": now}
                ).rowcount
            if taken == 1:
                log.warning("taking over an Idempotency-Key whose sender stopped mid-write")
                claim.at = now
                return dict(row._mapping) | {"state": "resume"}
            continue
        if time.monotonic() >= deadline:
            raise ConflictError(
                f"A request with Idempotency-Key {key!r} is still being processed.",
                hint="Retry in a few seconds to get its answer.",
            )
        time.sleep(0.05)


def _created() -> dict[str, Any]:
    return {"created_at": datetime.now(UTC)}


def _lease_ran_out(services: Services, claimed_at: datetime) -> bool:
    if claimed_at.tzinfo is None:  # SQLite hands back naive UTC
        claimed_at = claimed_at.replace(tzinfo=UTC)
    return datetime.now(UTC) - claimed_at > timedelta(seconds=services.settings.idempotency_lease)


def _finish(services: Services, caller: Caller, key: str, status: int, body: dict[str, Any]) -> None:
    _update(services, caller, key, state="done", response_status=status, response_body=body)


def _record_txs(services: Services, caller: Caller, key: str, txs: list[SignedTx], claim: _Claim) -> None:
    """Journal `txs` before the newest is broadcast, if the key is still ours; raising stops the broadcast."""
    now = datetime.now(UTC)
    values = {
        "w_txs": [{"tx_hash": t.tx_hash, "raw": t.raw} for t in txs],
        "w_claimed": claim.at,
        "w_now": now,
    }
    with services.engine.begin() as conn:
        kept = conn.execute(_RECORD_CLAIMED, _row(caller, key) | values).rowcount == 1
    if not kept:
        claim.lost = True
        raise ConflictError(
            f"The Idempotency-Key {key!r} was taken over by a retry while this request was stalled past "
            "its lease; this request stopped before sending anything more.",
            hint="Retry with the same Idempotency-Key to get the write's answer.",
        )
    claim.at = now


def _leave_unconfirmed(services: Services, caller: Caller, key: str) -> None:
    _update(services, caller, key, state="unconfirmed")


def _in_flight_response(exc: ChainError, key: str) -> JSONResponse:
    log.warning("write with an Idempotency-Key left unconfirmed: %s", type(exc).__name__)
    return JSONResponse(
        {
            "error": "ChainUnavailable",
            "message": f"The chain node failed after the transaction was sent: {exc.message}",
            "hint": f"It may or may not have been recorded. Retry with the same Idempotency-Key ({key!r}): "
            "the same transaction is looked up (and resent unchanged if the node lost it), never a new one.",
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _release(services: Services, caller: Caller, key: str) -> None:
    with services.engine.begin() as conn:
        conn.execute(_DELETE, _row(caller, key))


def run_write(
    services: Services,
    caller: Caller,
    *,
    method: str,
    path: str,
    body: BaseModel | dict[str, Any] | None,
    idempotency_key: str | None,
    wait: bool,
    action: Callable[[LedgerContract], Outcome],
    status_code: int = 201,
) -> JSONResponse:
    """Run `action` at most once per idempotency key and answer with what it recorded.

    `action` sends through the contract it is handed: a view journaled (`LedgerContract.journaled`) so that
    each transaction's signer is kept before it is broadcast (the indexer may mirror it, and the monitor name
    its payer, before the receipt comes back), and with an idempotency key each transaction is stored in the
    key's row before it is broadcast."""
    digest = request_hash(method, path, body)
    journal: SendJournal | None = None
    claim = _Claim()
    if idempotency_key is not None:
        stored = _reserve(services, caller, idempotency_key, digest, claim)
        key = idempotency_key
        recorded = [SignedTx(t["tx_hash"], t["raw"]) for t in (stored or {}).get("txs") or []]

        def on_signed(txs: list[SignedTx]) -> None:
            _keep_signer(services, caller, txs)
            _record_txs(services, caller, key, txs, claim)

        journal = SendJournal(recorded, on_signed)
        if stored is not None and stored["state"] == "resume":
            log.info("resuming an unconfirmed write (%d recorded transactions)", len(recorded))
            stored = None
        if stored is not None:
            replay = dict(stored["response_body"] or {})
            status = int(stored["response_status"] or 200)
            if wait and status < 300 and not replay.get("mirrored"):
                replay["mirrored"] = wait_for_block(services, int(replay["block_number"]))
            return JSONResponse(replay, status_code=status, headers={"Idempotent-Replayed": "true"})
    ledger = services.ledger.journaled(
        journal if journal is not None else SendJournal((), lambda txs: _keep_signer(services, caller, txs))
    )
    try:
        outcome = action(ledger)
    except ChainError as exc:
        refused = isinstance(exc, RpcError) and exc.method == "eth_sendRawTransaction"
        if (
            idempotency_key is not None
            and not claim.lost
            and journal is not None
            and journal.signed
            and not (refused and len(journal.signed) == 1)
        ):
            # Signed and perhaps broadcast: keep the transactions so a retry resumes them.
            _leave_unconfirmed(services, caller, idempotency_key)
            return _in_flight_response(exc, idempotency_key)
        # Nothing was signed (sends are estimated first), or the node answered the only send with a
        # refusal: nothing reached the chain, so a retry may send.
        if idempotency_key is not None and not claim.lost:
            _release(services, caller, idempotency_key)
        raise
    except FundflowError as exc:
        # A lost claim: the key is the retry's now, and this request leaves its row alone.
        if idempotency_key is not None and not claim.lost:
            failed = error_response(exc)
            import json

            _finish(services, caller, idempotency_key, failed.status_code, json.loads(bytes(failed.body)))
        raise
    except BaseException:
        if idempotency_key is not None and not claim.lost:
            if journal is not None and journal.signed:
                _leave_unconfirmed(services, caller, idempotency_key)
            else:
                _release(services, caller, idempotency_key)
        raise
    try:  # the caller's own documents its write names are attached to what the write recorded
        documents.attach(services, caller, outcome.tx)
    except sa.exc.SQLAlchemyError:  # pragma: no cover - the write is on chain; it must not answer 500
        log.exception("could not record the documents attached by transaction %s", outcome.tx.tx_hash)
    try:  # a resumed write's transactions were signed by an earlier attempt: keep their signer too
        remember_signer(services.engine, outcome.tx.tx_hash, caller.address)
    except sa.exc.SQLAlchemyError:  # pragma: no cover - the write is on chain; it must not answer 500
        log.exception("could not keep the signer of transaction %s", outcome.tx.tx_hash)
    body_out = result_body(outcome, mirrored=False)
    if idempotency_key is not None:
        _finish(services, caller, idempotency_key, status_code, body_out)
    if wait:
        body_out["mirrored"] = wait_for_block(services, outcome.tx.block_number)
    return JSONResponse(body_out, status_code=status_code)


def _keep_signer(services: Services, caller: Caller, txs: list[SignedTx]) -> None:
    """Who signed the transaction about to be broadcast: a payment's payer is its signer (the monitor and
    the pages name it), kept before the indexer can mirror the payment."""
    try:
        remember_signer(services.engine, txs[-1].tx_hash, caller.address)
    except sa.exc.SQLAlchemyError:  # pragma: no cover - the payer is then named as the trail shows it
        log.exception("could not keep the signer of transaction %s", txs[-1].tx_hash)


@dataclass
class Write:
    """What every write route needs besides its body: the caller, the services, and the request's
    idempotency key and wait flag (the route's `Idempotency-Key` header and `?wait=` come from here)."""

    request: Request
    caller: Caller
    services: Services
    idempotency_key: str | None
    wait: bool
    session: Session | None = None  # the request's session, handed back before the chain send

    def record(
        self,
        body: BaseModel | dict[str, Any] | None,
        action: Callable[[LedgerContract], Outcome],
        *,
        path: str | None = None,
        status_code: int = 201,
    ) -> JSONResponse:
        """`run_write` for this request; `path` overrides the URL in the idempotency hash (routes that
        accept a loan number or id pass the canonical form, so both spellings count as one request)."""
        if self.session is not None:
            # The request's checks are done: give its connection back to the pool before the send. Held
            # through the node's answer, every concurrent write kept one connection while it waited for a
            # second (its idempotency row), and a hundred of them exhausted the pool (QueuePool timeout).
            self.session.close()
        return run_write(
            self.services,
            self.caller,
            method=self.request.method,
            path=path or self.request.url.path,
            body=body,
            idempotency_key=self.idempotency_key,
            wait=self.wait,
            action=action,
            status_code=status_code,
        )


async def get_write(
    request: Request,
    caller: ParticipantDep,
    services: ServicesDep,
    session: SessionDep,
    idempotency_key: IdempotencyKeyDep,
    wait: WaitDep,
) -> Write:
    return Write(request, caller, services, idempotency_key, wait, session)


WriteDep = Annotated[Write, Depends(get_write)]
