"""Audit outputs of a loan: online verification against the chain, the offline proof bundle, the printable
report and the trail export. Each covers the whole trail, so only callers who see the whole trail (the
loan's lender, its borrower, auditors) get them; someone who only holds or paid a lot gets 403.

A verification that runs and finds problems is an answer (`ok: false`, the rows named), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.services import Services
from api.services.access import whole_trail_loan
from api.services.rows import account_names, org_names
from ledger.audit.bundle import build_bundle, bundle_to_text, heads_slot
from ledger.audit.report import (
    REPORT_CSP,
    People,
    block_times,
    export_csv,
    export_json,
    render_html,
    report_hash,
)
from ledger.audit.verify import Verification, directory_documents, verify_loan
from ledger.audit.workbook import XLSX_MEDIA_TYPE, export_xlsx
from ledger.errors import FundflowError, ValidationError
from ledger.store.offchain import LoanMetadata

__all__ = ["AuditFile", "bundle", "export", "report", "verification", "verification_summary", "verify"]

meta_t: sa.Table = LoanMetadata.__table__  # type: ignore[attr-defined]


@dataclass
class AuditFile:
    """A file to hand out: its content, media type, name and any extra headers."""

    content: str | bytes
    media_type: str
    filename: str | None = None
    headers: dict[str, str] | None = None

    def all_headers(self) -> dict[str, str]:
        out = dict(self.headers or {})
        if self.filename is not None:
            out["Content-Disposition"] = f'attachment; filename="{self.filename}"'
        return out


def verify(services: Services, loan_id: str, block: int | None = None) -> Verification:
    """Verify a loan's mirrored trail against the chain (no access check: callers check first)."""
    return verify_loan(
        services.engine,
        services.ledger,
        loan_id,
        block=block,
        documents=directory_documents(services.settings.documents_dir),
    )


def _label(session: Session, loan_id: str) -> str:
    """The loan number for file names, else the loan id."""
    number = session.execute(sa.select(meta_t.c.loan_number).where(meta_t.c.loan_id == loan_id)).scalar()
    return str(number or loan_id)


def people(session: Session, services: Services, row: Any) -> People:
    """Names, loan number, currency and the bank's zone: what puts a report or export in a person's terms."""
    label = _label(session, row.loan_id)
    return People(
        names=account_names(services),
        orgs=org_names(services),
        loan_number=None if label == row.loan_id else label,
        currency=str(row.currency),
        zone=services.settings.bank_zone,
    )


@cache
def _heads_slot() -> int:
    """The `_heads` storage slot, from the compiled contract's storage layout (as `fundflow bundle` does)."""
    from ledger.chain.compiler import load_contract
    from ledger.chain.deploy import CONTRACT_NAME

    return heads_slot(load_contract(CONTRACT_NAME).storage_layout)


def verification(
    session: Session, services: Services, caller: Caller, loan: str, block: int | None = None
) -> dict[str, Any]:
    row = whole_trail_loan(session, caller, loan, "verification")
    return verify(services, row.loan_id, block).to_dict()


def verification_summary(services: Services, caller: Caller, row: Any) -> dict[str, Any] | None:
    """What a loan page says about verification: None for a caller who may not verify the whole trail,
    state "unavailable" when verification could not run (node down)."""
    if not policy.allowed(caller, "loan.verification", row):
        return None
    try:
        result = verify(services, row.loan_id)
    except FundflowError as exc:
        return {"state": "unavailable", "problems": [str(exc)]}
    return {
        "state": "ok" if result.ok else "failed",
        "block": result.block_number,
        "block_hash": result.block_hash,
        "head": result.head_on_chain,
        "problems": result.problems(),
        "summary": result.summary,
        "grew": result.trail_grew_since,
    }


def bundle(session: Session, services: Services, caller: Caller, loan: str, block: int | None) -> AuditFile:
    row = whole_trail_loan(session, caller, loan, "proof bundle")
    if block is not None and block < int(row.block_number):
        raise ValidationError(
            f"Loan {loan} was opened in block {row.block_number}; there is nothing to prove at block "
            f"{block}.",
            hint=f"Pass a block at or after {row.block_number}, or leave it out for the latest.",
        )
    built = build_bundle(
        services.ledger,
        row.loan_id,
        storage_slot=_heads_slot(),
        from_block=services.deployment.block_number,
        block=block,
    )
    at = int(built["header"]["number"], 16)
    return AuditFile(
        bundle_to_text(built),
        "application/json",
        f"fundflow-bundle-{_label(session, row.loan_id)}-block-{at}.json",
    )


def report(session: Session, services: Services, caller: Caller, loan: str, block: int | None) -> AuditFile:
    """The printable report; `X-Report-Hash` is keccak256 of its exact bytes (what auditors attest)."""
    row = whole_trail_loan(session, caller, loan, "audit report")
    result = verify(services, row.loan_id, block)
    times = block_times(services.engine, [e.block_number for e in result.events] + [result.block_number])
    page = render_html(
        result,
        times=times,
        title=f"Fund-flow audit report 资金流向审计报告: loan {_label(session, row.loan_id)}",
        people=people(session, services, row),
    )
    headers = {
        "X-Report-Hash": report_hash(page),
        "Content-Security-Policy": REPORT_CSP,
    }  # its style, by hash
    return AuditFile(page, "text/html; charset=utf-8", headers=headers)


def export(
    session: Session,
    services: Services,
    caller: Caller,
    loan: str,
    format: Literal["csv", "json", "xlsx"],  # noqa: A002
    block: int | None,
) -> AuditFile:
    row = whole_trail_loan(session, caller, loan, "export")
    result = verify(services, row.loan_id, block)
    times = block_times(services.engine, [e.block_number for e in result.events] + [result.block_number])
    who = people(session, services, row)
    name = f"fundflow-trail-{_label(session, row.loan_id)}-block-{result.block_number}.{format}"
    if format == "csv":
        return AuditFile(export_csv(result, times, who, bom=True), "text/csv; charset=utf-8", name)
    if format == "xlsx":
        return AuditFile(export_xlsx(result, times, who), XLSX_MEDIA_TYPE, name)
    return AuditFile(export_json(result, times, who), "application/json", name)
