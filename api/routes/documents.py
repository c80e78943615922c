"""Evidence documents (invoices, contracts, delivery notes): stored off chain under their keccak256 hash,
which is what goes on chain; downloadable, and verifiable later against the events that recorded the hash.

Upload the raw bytes as the request body (any Content-Type); the optional `X-Filename` header names it.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from sqlmodel import Session

from api.access import loan_visibility
from api.deps import Caller, ParticipantDep, ServicesDep, SessionDep
from api.errors import ERROR_RESPONSES
from ledger.errors import ChainError, NotFoundError, PayloadTooLargeError, StorageError, ValidationError
from ledger.mirror.models import Event, Loan
from ledger.store.offchain import Document, keccak_hex

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/documents",
    tags=["documents"],
    responses={k: ERROR_RESPONSES[k] for k in (401, 404, 422, 503)},
)
docs_t: sa.Table = Document.__table__  # type: ignore[attr-defined]
events_t: sa.Table = Event.__table__  # type: ignore[attr-defined]
loans_t: sa.Table = Loan.__table__  # type: ignore[attr-defined]
_HASH = re.compile(r"0x[0-9a-f]{64}")

_DOC = {
    "hash": "0x9c22ff5f21f0b81b113e63f7db6da94fedef11b2119b4088b89664fb9a3cb658",
    "size": 48213,
    "media_type": "application/pdf",
    "filename": "invoice-2026-0042.pdf",
}


def _check_hash(value: str) -> str:
    value = value.lower()
    if not _HASH.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not a document hash", hint="0x followed by 64 hex digits (keccak256)"
        )
    return value


@router.post(
    "",
    status_code=201,
    summary="Upload an evidence document; answers with its keccak256 hash to put on chain",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={201: {"content": {"application/json": {"example": _DOC}}}, 413: {"description": "Too large"}},
)
async def upload(
    request: Request,
    caller: ParticipantDep,
    services: ServicesDep,
    x_filename: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    limit = services.settings.document_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The document is {int(declared):,} bytes; the limit is {limit:,} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The document is larger than the limit of {limit:,} bytes.")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise ValidationError("The document is empty.", hint="Send the file's bytes as the request body.")
    digest = keccak_hex(data)
    directory = services.settings.documents_dir
    path = directory / digest
    tmp: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
    except OSError as exc:
        # Disk full, read-only, or not a directory: no partial file stays behind, nothing is recorded.
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise StorageError(
            f"The document store cannot save the file ({exc.strerror or type(exc).__name__})."
        ) from exc
    media_type = request.headers.get("content-type", "application/octet-stream")
    row = {
        "hash": digest,
        "size": len(data),
        "media_type": media_type,
        "filename": x_filename,
        "uploaded_by": caller.address,
        "created_at": datetime.now(UTC),
    }
    try:
        with services.engine.begin() as conn:
            conn.execute(sa.insert(docs_t).values(**row))
    except sa.exc.IntegrityError:
        pass  # the same bytes were uploaded before: same hash, same file
    return {k: row[k] for k in ("hash", "size", "media_type", "filename")}


def _references(session: Session, digest: str) -> list[Any]:
    return list(
        session.execute(
            sa.select(events_t)
            .where(sa.cast(events_t.c.args, sa.Text).like(f"%{digest}%"))
            .order_by(events_t.c.block_number, events_t.c.log_index)
        )
    )


def _visible_document(session: Session, caller: Caller, digest: str) -> tuple[Any, list[Any]]:
    doc = session.execute(sa.select(docs_t).where(docs_t.c.hash == digest)).first()
    refs = _references(session, digest)
    missing = NotFoundError(f"No document {digest} is visible to {caller.name}.", hint="Check the hash.")
    if doc is None:
        raise missing
    if caller.role == "auditor" or doc.uploaded_by in caller.org_accounts:
        return doc, refs
    loan_ids = {r.loan_id for r in refs if r.loan_id}
    condition = loan_visibility(caller)
    if loan_ids and condition is not None:
        seen = session.execute(
            sa.select(loans_t.c.loan_id).where(loans_t.c.loan_id.in_(loan_ids), condition)
        ).first()
        if seen is not None:
            return doc, refs
    raise missing


@router.get(
    "/{digest}", summary="Download a document", responses={200: {"content": {"application/octet-stream": {}}}}
)
def download(digest: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> Response:
    digest = _check_hash(digest)
    doc, _ = _visible_document(session, caller, digest)
    path = services.settings.documents_dir / digest
    if not path.exists():
        raise NotFoundError(
            f"Document {digest} was erased from storage.",
            hint="Only its hash remains on chain (erasure path).",
        )
    headers = {"X-Document-Hash": digest}
    if doc.filename:
        headers["Content-Disposition"] = f'attachment; filename="{doc.filename}"'
    return Response(path.read_bytes(), media_type=doc.media_type, headers=headers)


_VERIFY = {
    "hash": _DOC["hash"],
    "stored": True,
    "content_matches": True,
    "recorded": [
        {"event": "Paid", "loan_id": "0x2b…", "block_number": 31, "tx_hash": "0x8a…", "on_chain": True}
    ],
    "verified": True,
}


@router.get(
    "/{digest}/verify",
    summary="Re-hash the stored bytes and check the hash against the chain",
    responses={200: {"content": {"application/json": {"example": _VERIFY}}}},
)
def verify(digest: str, caller: ParticipantDep, session: SessionDep, services: ServicesDep) -> dict[str, Any]:
    digest = _check_hash(digest)
    _, refs = _visible_document(session, caller, digest)
    path = services.settings.documents_dir / digest
    stored = path.exists()
    content_matches = stored and keccak_hex(path.read_bytes()) == digest
    recorded = []
    for ref in refs:
        on_chain: bool | None
        try:
            receipt = services.client.rpc("eth_getTransactionReceipt", [ref.transaction_hash])
            on_chain = (
                bool(receipt)
                and receipt.get("blockHash") == ref.block_hash
                and any(
                    int(log["logIndex"], 16) == ref.log_index
                    and (
                        digest[2:] in log.get("data", "")
                        or digest in [t.lower() for t in log.get("topics", [])]
                    )
                    for log in receipt.get("logs", [])
                )
            )
        except ChainError:
            on_chain = None  # the node is unreachable: unknown, not false
        recorded.append(
            {
                "event": ref.name,
                "loan_id": ref.loan_id,
                "block_number": ref.block_number,
                "tx_hash": ref.transaction_hash,
                "on_chain": on_chain,
            }
        )
    return {
        "hash": digest,
        "stored": stored,
        "content_matches": content_matches,
        "recorded": recorded,
        "verified": content_matches and bool(recorded) and all(r["on_chain"] for r in recorded),
    }
