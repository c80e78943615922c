"""Who signed a transaction: the payer of a lot is the account that signed its payment, not the holder of
the lot it was paid out of (a lender servicing a loan pays out of the borrower's lot).

Events do not carry the signer, so it is asked of the node (`eth_getTransactionByHash`, one batch for all
missing) and kept in `tx_signers`; a transaction hash commits to its signature, so a kept answer is never
stale. A node that cannot be reached leaves the signer unknown (None) rather than guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa
from eth_utils import to_checksum_address
from sqlmodel import Session

from api.services import Services
from ledger.errors import FundflowError
from ledger.store.offchain import TxSigner

__all__ = ["signers"]

signers_t: sa.Table = TxSigner.__table__  # type: ignore[attr-defined]
_CHUNK = 200


def signers(session: Session, services: Services, tx_hashes: Iterable[str]) -> dict[str, str]:
    """Signer address (checksummed) by transaction hash, for the transactions whose signer is known."""
    wanted = sorted({h.lower() for h in tx_hashes if h})
    known: dict[str, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        part = wanted[start : start + _CHUNK]
        kept = session.execute(
            sa.select(signers_t.c.transaction_hash, signers_t.c.signer).where(
                signers_t.c.transaction_hash.in_(part)
            )
        )
        known.update({str(h): str(s) for h, s in kept})
    missing = [h for h in wanted if h not in known]
    fetched: dict[str, str] = {}
    for start in range(0, len(missing), _CHUNK):
        part = missing[start : start + _CHUNK]
        try:
            answers = services.client.batch([("eth_getTransactionByHash", [h]) for h in part])
        except FundflowError:
            break  # unknown, not guessed: the page says so
        for h, tx in zip(part, answers, strict=True):
            if isinstance(tx, dict) and tx.get("from"):
                fetched[h] = to_checksum_address(tx["from"])
    if fetched:
        # Another request may have kept the same rows meanwhile: insert only what is still missing.
        present = {
            str(h)
            for (h,) in session.execute(
                sa.select(signers_t.c.transaction_hash).where(signers_t.c.transaction_hash.in_(list(fetched)))
            )
        }
        now = datetime.now(UTC)
        rows = [
            {"transaction_hash": h, "signer": s, "created_at": now}
            for h, s in fetched.items()
            if h not in present
        ]
        if rows:
            try:
                session.execute(sa.insert(signers_t), rows)
                session.commit()
            except sa.exc.IntegrityError:  # kept by a concurrent request first: the same answer
                session.rollback()
    return known | fetched
