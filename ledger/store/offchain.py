"""Off-chain tables the API writes: API tokens (hashed), idempotency records, evidence documents and loan
metadata (human loan numbers, structured terms whose canonical hash is the on-chain terms hash).

They live next to the mirror but are never derived from the chain; the chain ties to them only by hashes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

from ledger.errors import NotFoundError, ValidationError
from ledger.protocol.canonical import canonical_json
from ledger.protocol.terms import LoanTerms, TermsProvider, terms_hash

__all__ = [
    "ApiToken",
    "Document",
    "DocumentAttachment",
    "DocumentUpload",
    "FileContent",
    "IdempotencyRecord",
    "LOAN_ID_PATTERN",
    "LOAN_NUMBER_PATTERN",
    "LoanMetadata",
    "LoanOpening",
    "TermsVersion",
    "TxSigner",
    "canonical_json",
    "remember_signer",
    "signers_of",
    "create_token",
    "db_terms_provider",
    "find_token",
    "hash_token",
    "keep_terms_version",
    "keccak_hex",
    "loan_id_of",
    "revoke_tokens",
    "terms_hash",
    "token_fingerprint",
]

_JSON = sa.JSON()
TOKEN_PREFIX = "ff_"


def _now() -> datetime:
    return datetime.now(UTC)


class ApiToken(SQLModel, table=True):
    """A bearer token of one participant account. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_tokens"

    token_hash: str = Field(primary_key=True, sa_type=sa.String(64))
    participant: str = Field(sa_type=sa.String(200), index=True)
    key_name: str = Field(sa_type=sa.String(64))
    address: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    revoked: bool = False
    expires_at: datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class IdempotencyRecord(SQLModel, table=True):
    """One POST made with an Idempotency-Key. The unique (caller, key) row is reserved before anything is
    sent, so of many identical concurrent requests exactly one sends; the others replay its response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.UniqueConstraint("caller", "key", name="uq_idempotency_caller_key"),)

    id: int | None = Field(default=None, primary_key=True)
    caller: str = Field(sa_type=sa.String(42))
    key: str = Field(sa_type=sa.String(255))
    request_hash: str = Field(sa_type=sa.String(64))
    state: str = Field(
        default="pending",
        sa_type=sa.String(12),
        description="pending, unconfirmed (sent, fate unknown) or done",
    )
    response_status: int | None = None
    response_body: dict[str, Any] | None = Field(default=None, sa_type=_JSON)
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    txs: list[dict[str, str]] | None = Field(
        default=None,
        sa_type=_JSON,
        description="transactions signed for this request ({tx_hash, raw}), stored before each broadcast",
    )


class Document(SQLModel, table=True):
    """An uploaded evidence document, stored as data_dir/documents/<keccak256 of its bytes>; `uploaded_by` is
    its first uploader (every uploading organisation is a `DocumentUpload`)."""

    __tablename__ = "documents"

    hash: str = Field(primary_key=True, sa_type=sa.String(66))
    size: int = Field(sa_type=sa.BigInteger)
    media_type: str = Field(sa_type=sa.String(200))
    filename: str | None = Field(default=None, sa_type=sa.String(255))
    uploaded_by: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


class DocumentUpload(SQLModel, table=True):
    """An organisation that uploaded a document's bytes: it may always read them back. The same bytes sent
    by two organisations are one file and two uploads."""

    __tablename__ = "document_uploads"

    hash: str = Field(primary_key=True, sa_type=sa.String(66))
    org_id: str = Field(primary_key=True, sa_type=sa.String(66))
    uploaded_by: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


class DocumentAttachment(SQLModel, table=True):
    """A record an uploader attached its document to: an event of the uploading organisation's own write
    that names the hash (the lot it created or touched, else the loan). Whoever sees that record may read
    the document; another party's event naming the same hash is no attachment and grants nothing."""

    __tablename__ = "document_attachments"

    hash: str = Field(primary_key=True, sa_type=sa.String(66))
    transaction_hash: str = Field(primary_key=True, sa_type=sa.String(66))
    log_index: int = Field(primary_key=True)
    org_id: str = Field(sa_type=sa.String(66))
    event: str = Field(sa_type=sa.String(64))
    loan_id: str | None = Field(default=None, sa_type=sa.String(66))
    lot_id: str | None = Field(default=None, sa_type=sa.String(66))
    block_number: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


class LoanMetadata(SQLModel, table=True):
    """An opened loan's human number (unique per lending organisation) and structured terms;
    `terms_hash` = keccak256(canonical_json(terms)). Written only once the loan opened on chain."""

    __tablename__ = "loan_metadata"
    __table_args__ = (
        sa.UniqueConstraint("lender_org", "loan_number", name="uq_loan_metadata_lender_number"),
    )

    loan_id: str = Field(primary_key=True, sa_type=sa.String(66))
    loan_number: str = Field(sa_type=sa.String(64))
    lender_org: str | None = Field(default=None, sa_type=sa.String(66))
    terms: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    terms_hash: str = Field(sa_type=sa.String(66))
    borrower_salt: str | None = Field(default=None, sa_type=sa.String(64))
    created_by: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


class TermsVersion(SQLModel, table=True):
    """Every terms document a loan has had (its opening's and each change of terms'), keyed by the loan and
    the document's canonical hash, the hash the chain names (`LoanOpened` / `TermsChanged.termsHash`).
    Written in the same transaction as `loan_metadata`, once the chain accepted the terms; never updated, so
    the terms in force at any past date, and those an event was made under, stay readable."""

    __tablename__ = "terms_versions"

    loan_id: str = Field(primary_key=True, sa_type=sa.String(66))
    terms_hash: str = Field(primary_key=True, sa_type=sa.String(66))
    terms: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    stored_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


def keep_terms_version(
    conn: sa.Connection, loan_id: str, terms: dict[str, Any], thash: str, at: datetime
) -> None:
    """Keep one terms version, in the caller's transaction; a version already kept (the same terms again, a
    retried request) is left as it is: the hash fixes the document."""
    table: sa.Table = TermsVersion.__table__  # type: ignore[attr-defined]
    kept = conn.execute(
        sa.select(table.c.loan_id).where(table.c.loan_id == loan_id, table.c.terms_hash == thash)
    ).first()
    if kept is not None:
        return
    try:
        with conn.begin_nested():  # a concurrent request keeping the same version first is no failure
            conn.execute(
                sa.insert(table).values(loan_id=loan_id, terms_hash=thash, terms=terms, stored_at=at)
            )
    except sa.exc.IntegrityError:
        pass


class FileContent(SQLModel, table=True):
    """The off-chain content of a post-loan file record (`RecordFiled.contentHash`): its canonical JSON
    document, keyed by keccak256 of it. Readers recompute the hash and ignore a row that no longer matches."""

    __tablename__ = "file_contents"

    hash: str = Field(primary_key=True, sa_type=sa.String(66))
    schema_name: str = Field(sa_type=sa.String(64))
    content: dict[str, Any] = Field(default_factory=dict, sa_type=_JSON)
    created_by: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


class LoanOpening(SQLModel, table=True):
    """A loan opening in flight: its id (from the lender's organisation, the number and a random salt),
    number and borrower salt, written before the transaction is signed, so a retry of the same request
    (same caller and Idempotency-Key) sends the same id and can never open a second loan. Removed when the
    loan opened (its terms then go to `loan_metadata`, in the same transaction) or the opening was refused;
    it holds no terms."""

    __tablename__ = "loan_openings"
    __table_args__ = (
        sa.UniqueConstraint("lender_org", "loan_number", name="uq_loan_openings_lender_number"),
        sa.UniqueConstraint("created_by", "request_key", name="uq_loan_openings_request"),
    )

    loan_id: str = Field(primary_key=True, sa_type=sa.String(66))
    lender_org: str = Field(sa_type=sa.String(66))
    loan_number: str = Field(sa_type=sa.String(64))
    salt: str = Field(sa_type=sa.String(66))
    borrower_salt: str = Field(sa_type=sa.String(64))
    created_by: str = Field(sa_type=sa.String(42))
    request_key: str | None = Field(default=None, sa_type=sa.String(255))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


def keccak_hex(data: bytes) -> str:
    return "0x" + keccak(data).hex()


# canonical_json and terms_hash are the protocol's (ledger.protocol.canonical, ledger.protocol.terms),
# re-exported here next to the table whose `terms_hash` column they fill.


def db_terms_provider(conn: sa.Connection) -> TermsProvider:
    """Terms the API stored, at the loan's current on-chain terms hash: the version of `terms_versions` with
    that hash (`terms_at` reads any other hash, e.g. the terms in force at a past date). Unusable documents
    count as unknown."""
    loans = sa.table("loans", sa.column("loan_id"), sa.column("terms_hash"))
    have_table = sa.inspect(conn).has_table("terms_versions")

    def lookup(loan_id: str) -> LoanTerms | None:
        if not have_table:
            return None
        current = conn.execute(sa.select(loans.c.terms_hash).where(loans.c.loan_id == loan_id)).scalar()
        return terms_at(conn, loan_id, str(current)) if current else None

    return lookup


def terms_at(conn: sa.Connection, loan_id: str, thash: str) -> LoanTerms | None:
    """The terms version of `loan_id` whose canonical hash is `thash` (the hash an event named), None when
    none is kept or the kept document no longer hashes to it (edited after the fact: not what the lender
    committed to) or is unusable."""
    table: sa.Table = TermsVersion.__table__  # type: ignore[attr-defined]
    document = conn.execute(
        sa.select(table.c.terms).where(table.c.loan_id == loan_id, table.c.terms_hash == thash.lower())
    ).scalar()
    if not isinstance(document, dict) or terms_hash(document) != thash.lower():
        return None
    try:
        return LoanTerms.from_document(document)
    except ValueError:
        return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_fingerprint(token_hash: str) -> str:
    """A short public name of a token (first 12 hex digits of its SHA-256): safe to log and to pass to
    `fundflow tokens revoke`."""
    return token_hash[:12]


def create_token(
    engine: Engine,
    *,
    participant: str,
    key_name: str,
    address: str,
    expires_at: datetime | None = None,
) -> str:
    """Make a new token for one participant account and return it; only its hash is kept. A token with
    `expires_at` is refused from that moment on."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=hash_token(token),
        participant=participant,
        key_name=key_name,
        address=address,
        expires_at=expires_at,
    )
    with engine.begin() as conn:
        conn.execute(sa.insert(ApiToken.__table__).values(**row.model_dump()))  # type: ignore[attr-defined]
    return token


_TOKEN_BY_HASH = sa.select(ApiToken.__table__).where(  # type: ignore[attr-defined]
    ApiToken.__table__.c.token_hash == sa.bindparam("digest")  # type: ignore[attr-defined]
)
"""Built once: every API request looks its token up."""


def find_token(engine: Engine, token: str) -> ApiToken | None:
    """The active token row for `token`, compared in constant time against the stored hash; None for an
    unknown, revoked or expired token."""
    digest = hash_token(token)
    with engine.connect() as conn:
        row = conn.execute(_TOKEN_BY_HASH, {"digest": digest}).first()
    if row is None or row.revoked or not hmac.compare_digest(row.token_hash, digest):
        return None
    expires = row.expires_at
    if expires is not None:
        if expires.tzinfo is None:  # SQLite hands back naive datetimes
            expires = expires.replace(tzinfo=UTC)
        if expires <= _now():
            return None
    return ApiToken.model_validate(dict(row._mapping))


def revoke_tokens(
    engine: Engine, *, fingerprint: str | None = None, participant: str | None = None
) -> list[ApiToken]:
    """Revoke one token (by fingerprint, see `token_fingerprint`) or every token of a participant; returns
    the rows revoked. Takes effect on the next request: tokens are looked up on every call."""
    if not fingerprint and not participant:
        return []
    table = ApiToken.__table__  # type: ignore[attr-defined]
    query = sa.select(table).where(table.c.revoked == sa.false())
    if fingerprint:
        query = query.where(table.c.token_hash.startswith(fingerprint.lower(), autoescape=True))
    if participant:
        query = query.where(table.c.participant == participant)
    with engine.begin() as conn:
        rows = [ApiToken.model_validate(dict(r._mapping)) for r in conn.execute(query)]
        if rows:
            conn.execute(
                sa.update(table)
                .where(table.c.token_hash.in_([r.token_hash for r in rows]))
                .values(revoked=True)
            )
    return rows


# ---------------------------------------------------------------------------------------------- loan refs

LOAN_ID_PATTERN = re.compile(r"0x[0-9a-fA-F]{64}")
LOAN_NUMBER_PATTERN = re.compile(r"LN-[0-9]{4}-[0-9]{4,8}")


def loan_id_of(engine: Engine | None, ref: str) -> str:
    """The on-chain id of a loan given by its id (0x + 64 hex digits) or its number ("LN-2026-0001"), for
    the command line, which sees every bank's loans (the API narrows numbers to what a caller sees).
    `engine` may be None when `ref` is an id."""
    ref = ref.strip()
    if LOAN_ID_PATTERN.fullmatch(ref):
        return ref.lower()
    if not LOAN_NUMBER_PATTERN.fullmatch(ref):
        raise ValidationError(
            f"{ref!r} is neither a loan id nor a loan number",
            hint='pass the 0x-prefixed 32-byte loan id or a loan number like "LN-2026-0001"',
        )
    if engine is None:
        raise ValidationError(
            f"loan number {ref} needs the database to look up", hint="pass the loan's 0x id instead"
        )
    table: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        query = sa.select(table.c.loan_id).where(table.c.loan_number == ref)
        ids = sorted(str(i) for i in conn.execute(query).scalars())
    if not ids:
        raise NotFoundError(
            f"no loan numbered {ref} is known to this database",
            hint="check the number (`fundflow` reads FUNDFLOW_DATABASE_URL), or pass the loan's 0x id",
        )
    if len(ids) > 1:
        raise ValidationError(
            f"loan number {ref} is used by {len(ids)} banks: {', '.join(ids)}",
            hint="pass the loan's 0x-prefixed 32-byte id instead",
        )
    return ids[0]


# --- issue 20: who signed a transaction ------------------------------------------------------------------


class TxSigner(SQLModel, table=True):
    """The account that signed a transaction, as the node answered `eth_getTransactionByHash`. A payment's
    payer is whoever signed it (the lender servicing a loan may pay out of the borrower's lot); events do not
    carry the signer, so it is asked once per transaction and kept. A transaction hash commits to its
    signature, so the answer never changes, and a reorg cannot make a kept row wrong."""

    __tablename__ = "tx_signers"

    transaction_hash: str = Field(primary_key=True, sa_type=sa.String(66))
    signer: str = Field(sa_type=sa.String(42))
    created_at: datetime = Field(default_factory=_now, sa_type=sa.DateTime(timezone=True))


def signers_of(conn: sa.Connection | Any, tx_hashes: Any) -> dict[str, str]:
    """Kept signers by (lower-case) transaction hash, for those among `tx_hashes` that are known."""
    table: sa.Table = TxSigner.__table__  # type: ignore[attr-defined]
    wanted = sorted({str(h).lower() for h in tx_hashes if h})
    out: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        rows = conn.execute(
            sa.select(table.c.transaction_hash, table.c.signer).where(table.c.transaction_hash.in_(part))
        )
        out.update({str(h): str(s) for h, s in rows})
    return out


def remember_signer(engine: Engine, tx_hash: str, signer: str) -> None:
    """Keep who signed a transaction this process sent (the API signs every write with the caller's key)."""
    table: sa.Table = TxSigner.__table__  # type: ignore[attr-defined]
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(table).values(transaction_hash=tx_hash.lower(), signer=signer, created_at=_now())
            )
    except sa.exc.IntegrityError:  # already kept: the same answer
        pass
