"""Auditor attestations: record on chain that a trail was verified, only after verifying it.

The contract's `attest(loanId, head, reportHash)` accepts only the loan's current head, so an attestation
always names the exact trail it covers; the report hash commits to the audit report the auditor signed off.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from ledger.audit.verify import Verification
from ledger.chain.client import TxResult
from ledger.chain.contract import LedgerContract
from ledger.errors import AttestationRefusedError

__all__ = ["attest_verified"]


def attest_verified(
    verification: Verification, ledger: LedgerContract, auditor: LocalAccount, *, report_hash: str
) -> TxResult:
    """Attest the head `verification` proved, with `report_hash` (e.g. `report.report_hash(html)`).

    Refuses a trail that failed verification, and one that grew after the block it was verified at (the
    contract would refuse the stale head anyway; this says why before anything is sent)."""
    if not verification.ok:
        raise AttestationRefusedError(
            f"loan {verification.loan_id} failed verification at block {verification.block_number}; "
            "an auditor does not attest a trail that does not verify",
            hint="see `fundflow verify` (or GET /v1/loans/{loan}/verification) for what differs; rebuild the "
            "mirror if it was tampered with",
        )
    if verification.trail_grew_since:
        raise AttestationRefusedError(
            f"loan {verification.loan_id} changed after block {verification.block_number}: head now "
            f"{verification.head_now}, verified {verification.head_on_chain}",
            hint="let the indexer catch up (`fundflow index --once`), verify again, then attest",
        )
    return ledger.attest(
        auditor, loan_id=verification.loan_id, head=verification.head_on_chain, report_hash=report_hash
    )
