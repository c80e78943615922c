"""Write-off (核销) and recoveries after it (核销后清收): the one model of each record and its hash.

A write-off is the contract's `closeLoan(loan, WrittenOff, reasonHash)`; the reason is off chain as the
canonical JSON of `WriteOff`, whose keccak256 is `reasonHash`. A recovery is a post-loan file record
`RecordFiled(loan, RECOVERY, recordId, contentHash)` whose content is `Recovery` (amount, date, source);
`recordId` is its content hash. Both are hash-chained into the loan's trail like every loan event.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ledger.protocol.canonical import canonical_json
from ledger.protocol.money import Amount

__all__ = ["RECOVERY_SCHEMA", "WRITE_OFF_SCHEMA", "Recovery", "RecoveryDetails", "WriteOff"]

WRITE_OFF_SCHEMA = "fundflow.write-off/1"
RECOVERY_SCHEMA = "fundflow.recovery/1"
_HASH = r"^0x[0-9a-f]{64}$"


class WriteOff(BaseModel):
    """Why a loan was written off, and when the bank decided it."""

    model_config = ConfigDict(extra="forbid")

    loan_id: str = Field(pattern=_HASH)
    reason: str = Field(min_length=1, max_length=5000)
    decided_on: date

    def document(self) -> dict[str, Any]:
        return {"schema": WRITE_OFF_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())


class RecoveryDetails(BaseModel):
    """Money recovered on a written-off loan (the API's request body)."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    received_on: date
    source: str = Field(min_length=1, max_length=500, description="e.g. collateral auction, settlement")


class Recovery(RecoveryDetails):
    loan_id: str = Field(pattern=_HASH)

    def document(self) -> dict[str, Any]:
        return {"schema": RECOVERY_SCHEMA, **self.model_dump(mode="json")}

    def canonical(self) -> bytes:
        return canonical_json(self.document())
