"""Evidence documents (invoices, contracts, delivery notes): stored off chain under their keccak256 hash,
which is what goes on chain; fetched by whoever uploaded them, auditors, and whoever sees a loan whose
events recorded the hash; verifiable later against those events on the chain."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api.deps import Caller
from api.services import Services
from api.services.access import loan_scope
from ledger.errors import ChainError, NotFoundError, StorageError, ValidationError
from ledger.mirror.read import DocumentReference, Mirror
from ledger.store.offchain import Document, keccak_hex

__all__ = ["DocumentFile", "check_hash", "download", "store", "stored", "verify"]

docs_t: sa.Table = Document.__table__  # type: ignore[attr-defined]
_HASH = re.compile(r"0x[0-9a-f]{64}")


@dataclass
class DocumentFile:
    """A stored document's bytes and how to hand them out."""

    digest: str
    data: bytes
    media_type: str
    filename: str | None

    def headers(self) -> dict[str, str]:
        headers = {"X-Document-Hash": self.digest}
        if self.filename:
            headers["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        return headers


def check_hash(value: str) -> str:
    value = value.lower()
    if not _HASH.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not a document hash", hint="0x followed by 64 hex digits (keccak256)"
        )
    return value


def store(
    services: Services, caller: Caller, data: bytes, media_type: str, filename: str | None
) -> dict[str, Any]:
    """Keep the bytes under their hash (atomically: no partial file stays behind) and record who sent them;
    the same bytes twice are one document."""
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
    row = {
        "hash": digest,
        "size": len(data),
        "media_type": media_type,
        "filename": filename,
        "uploaded_by": caller.address,
        "created_at": datetime.now(UTC),
    }
    try:
        with services.engine.begin() as conn:
            conn.execute(sa.insert(docs_t).values(**row))
    except sa.exc.IntegrityError:
        pass  # the same bytes were uploaded before: same hash, same file
    return {k: row[k] for k in ("hash", "size", "media_type", "filename")}


def _references(session: Session, digest: str) -> list[DocumentReference]:
    """The events that recorded `digest`, once each (an event naming it in two arguments counts once)."""
    refs: dict[tuple[int, int], DocumentReference] = {}
    for ref in Mirror(session).document_refs(digest):
        refs.setdefault((ref.block_number, ref.log_index), ref)
    return list(refs.values())


def _visible_document(session: Session, caller: Caller, digest: str) -> tuple[Any, list[DocumentReference]]:
    doc = session.execute(sa.select(docs_t).where(docs_t.c.hash == digest)).first()
    refs = _references(session, digest)
    missing = NotFoundError(f"No document {digest} is visible to {caller.name}.", hint="Check the hash.")
    if doc is None:
        raise missing
    if caller.role == "auditor" or doc.uploaded_by in caller.org_accounts:
        return doc, refs
    loan_ids = {r.loan_id for r in refs if r.loan_id}
    if loan_ids and Mirror(session).visible_loan_ids(loan_ids, loan_scope(caller)):
        return doc, refs
    raise missing


def stored(session: Session, hashes: list[str]) -> dict[str, Any]:
    """The stored documents among `hashes` (their rows, by hash); no bytes, no access check: a hash the
    caller already sees on a lot says only whether its document is kept."""
    if not hashes:
        return {}
    return {str(d.hash): d for d in session.execute(sa.select(docs_t).where(docs_t.c.hash.in_(hashes)))}


def download(session: Session, services: Services, caller: Caller, digest: str) -> DocumentFile:
    digest = check_hash(digest)
    doc, _ = _visible_document(session, caller, digest)
    path = services.settings.documents_dir / digest
    if not path.exists():
        raise NotFoundError(
            f"Document {digest} was erased from storage.",
            hint="Only its hash remains on chain (erasure path).",
        )
    return DocumentFile(digest, path.read_bytes(), doc.media_type, doc.filename)


def verify(session: Session, services: Services, caller: Caller, digest: str) -> dict[str, Any]:
    """Re-hash the stored bytes and check each event that recorded the hash against the node's receipt."""
    digest = check_hash(digest)
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
                "event": ref.event,
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
