"""Evidence documents (invoices, contracts, delivery notes): stored off chain under their keccak256 hash,
which is what goes on chain; verifiable later against the events that recorded the hash.

Who reads a document: the organisations that uploaded it, and whoever sees a record its uploader attached it
to. An attachment is an event of the uploading organisation's own write (through the API) that names the
hash (`attach`): the lot the event created or touched (seen as the trail shows it), else the loan (seen by
those who see its whole trail). Hashes are public on chain, so another party's event naming the same hash
is no attachment and grants nothing. A document the caller may not read is a 404, as for one never stored:
a 403 would confirm that a document with that hash (contents someone can guess) is kept here.

Documents are served as attachments, never inline: `Content-Disposition: attachment`, `nosniff` and a
sandboxing CSP, so an uploaded HTML page cannot run or navigate on the API's or the dashboard's origin."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from api.deps import Caller
from api.services import Services
from api.services.access import lot_visible, sees_whole_trail
from ledger.chain.client import TxResult
from ledger.errors import ChainError, NotFoundError, StorageError, ValidationError
from ledger.mirror.read import DocumentReference, Mirror
from ledger.store.offchain import Document, DocumentAttachment, DocumentUpload, keccak_hex

__all__ = ["DocumentFile", "attach", "check_hash", "download", "store", "stored", "verify"]

docs_t: sa.Table = Document.__table__  # type: ignore[attr-defined]
uploads_t: sa.Table = DocumentUpload.__table__  # type: ignore[attr-defined]
attach_t: sa.Table = DocumentAttachment.__table__  # type: ignore[attr-defined]
_HASH = re.compile(r"0x[0-9a-f]{64}")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")

# Served with every document: a download, never rendered; if a browser renders it anyway, no script, no
# plugin, no navigation, nothing loaded (the sandbox gives it a unique origin).
SERVING_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


@dataclass
class DocumentFile:
    """A stored document's bytes and how to hand them out."""

    digest: str
    data: bytes
    media_type: str
    filename: str | None

    def headers(self) -> dict[str, str]:
        """Always an attachment (the uploader's name, made safe, else the hash), `nosniff`, sandboxed."""
        name = self.filename or self.digest
        fallback = _SAFE_NAME.sub("_", name)
        disposition = f'attachment; filename="{fallback}"'
        if fallback != name:
            disposition += f"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
        return {"X-Document-Hash": self.digest, "Content-Disposition": disposition, **SERVING_HEADERS}


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
    upload = {
        "hash": digest,
        "org_id": caller.org_id,
        "uploaded_by": caller.address,
        "created_at": row["created_at"],
    }
    try:
        with services.engine.begin() as conn:
            conn.execute(sa.insert(uploads_t).values(**upload))
    except sa.exc.IntegrityError:
        pass  # this organisation sent these bytes before
    return {k: row[k] for k in ("hash", "size", "media_type", "filename")}


def _references(session: Session, digest: str) -> list[DocumentReference]:
    """The events that recorded `digest`, once each (an event naming it in two arguments counts once)."""
    refs: dict[tuple[int, int], DocumentReference] = {}
    for ref in Mirror(session).document_refs(digest):
        refs.setdefault((ref.block_number, ref.log_index), ref)
    return list(refs.values())


def _hex32(value: Any) -> str | None:
    if isinstance(value, bytes | bytearray) and len(value) == 32:
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and _HASH.fullmatch(value.lower()):
        return value.lower()
    return None


def _statement_evidence(services: Services, digest: str) -> str | None:
    """The evidence hash a stored statement document names, if `digest` is one (small JSON, kind+text)."""
    path = services.settings.documents_dir / digest
    try:
        if not path.is_file() or path.stat().st_size > 64 * 1024:
            return None
        body = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or set(body) != {"kind", "text", "evidence_hash"}:
        return None
    return _hex32(body["evidence_hash"])


def attach(services: Services, caller: Caller, tx: TxResult) -> int:
    """Record the documents the caller's organisation uploaded that its write `tx` names (in an argument
    `...Hash`) as attached to the event's record: its lot (`lotId`), else its loan. Returns how many."""
    named: dict[str, list[Any]] = {}
    for event in tx.events:
        for argument, value in event.args.items():
            digest = _hex32(value) if argument.endswith("Hash") else None
            if digest is not None and int(digest, 16) != 0:
                named.setdefault(digest, []).append(event)
    if not named:
        return 0
    # A payee's statement (its words and an evidence file under one on-chain hash, api.services.lots)
    # names its evidence document: that is attached to the same record as the statement.
    for digest, events in list(named.items()):
        nested = _statement_evidence(services, digest)
        if nested is not None:
            named.setdefault(nested, []).extend(events)
    rows = []
    with services.engine.begin() as conn:
        own = conn.execute(
            sa.select(uploads_t.c.hash).where(
                uploads_t.c.hash.in_(sorted(named)), uploads_t.c.org_id == caller.org_id
            )
        ).scalars()
        for digest in own:
            for event in named[digest]:
                rows.append(
                    {
                        "hash": digest,
                        "transaction_hash": tx.tx_hash.lower(),
                        "log_index": event.log_index,
                        "org_id": caller.org_id,
                        "event": event.name,
                        "loan_id": _hex32(event.args.get("loanId")),
                        "lot_id": _hex32(event.args.get("lotId")),
                        "block_number": tx.block_number,
                        "created_at": datetime.now(UTC),
                    }
                )
        for row in rows:  # a resumed write attaches again: the key makes that a no-op
            done = conn.execute(
                sa.select(attach_t.c.hash).where(
                    attach_t.c.hash == row["hash"],
                    attach_t.c.transaction_hash == row["transaction_hash"],
                    attach_t.c.log_index == row["log_index"],
                )
            ).first()
            if done is None:
                conn.execute(sa.insert(attach_t).values(**row))
    return len(rows)


def _sees_attachment(session: Session, caller: Caller, digest: str, refs: list[DocumentReference]) -> bool:
    """Whether the caller sees a record the uploader attached `digest` to, among the events that are on the
    mirrored chain now (an attachment whose transaction a reorg dropped counts no more)."""
    mirrored = {r.transaction_hash.lower() for r in refs}
    mirror = Mirror(session)
    for a in session.execute(sa.select(attach_t).where(attach_t.c.hash == digest)):
        if a.loan_id is None:
            continue
        if a.transaction_hash not in mirrored and not _statement_on_chain(session, a):
            continue
        loan = mirror.loan(a.loan_id)
        if loan is None:
            continue
        if a.lot_id is None:
            if sees_whole_trail(caller, loan):
                return True
            continue
        lot = mirror.lot(a.lot_id)
        if lot is None:
            continue
        parent = mirror.lot(lot.parent_lot_id) if lot.parent_lot_id is not None else None
        if lot_visible(caller, loan, lot, parent.holder if parent is not None else None):
            return True
    return False


def _statement_on_chain(session: Session, attachment: Any) -> bool:
    """An evidence file named inside a payee's statement is named by no event itself: its attachment counts
    while the transaction that recorded the statement is on the mirrored chain."""
    return Mirror(session).has_transaction(
        attachment.transaction_hash, attachment.loan_id, int(attachment.block_number)
    )


def _visible_document(session: Session, caller: Caller, digest: str) -> tuple[Any, list[DocumentReference]]:
    """The document's row and the events naming it, if the caller uploaded it or sees a record its uploader
    attached it to; else 404, as for a document never stored."""
    doc = session.execute(sa.select(docs_t).where(docs_t.c.hash == digest)).first()
    missing = NotFoundError(f"No document {digest} is visible to {caller.name}.", hint="Check the hash.")
    if doc is None:
        raise missing
    refs = _references(session, digest)
    uploaded = session.execute(
        sa.select(uploads_t.c.org_id).where(uploads_t.c.hash == digest, uploads_t.c.org_id == caller.org_id)
    ).first()
    if uploaded is not None or doc.uploaded_by in caller.org_accounts:
        return doc, refs
    if _sees_attachment(session, caller, digest, refs):
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
