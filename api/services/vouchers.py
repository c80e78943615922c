"""Supply-chain vouchers (issue 22): the work behind /v1/vouchers, the dashboard's voucher pages and
`fundflow vouchers`.

Writes go through the one write path (`api.writes`: idempotency key, journaled signing, decoded reverts),
sending to the voucher contract beside the ledger. Before a write, the caller's relationship to the voucher
is read from the chain itself (the voucher's core enterprise, the part's holder, the bank asked, the bank of
the core's line), so a refusal names who may instead even when the mirror lags; the contract checks again.

Reads come from the mirror (credit_lines, vouchers, voucher_parts, voucher_financings): a voucher's tree
with its holders' names, yuan and dates; per caller, a core enterprise's payables by due date against its
line, a supplier's parts with the finance action, a bank's financing book and its exposure per core
enterprise.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from fastapi.responses import JSONResponse
from sqlmodel import Session

from api import policy
from api.deps import Caller
from api.i18n import RULE_LABELS
from api.policy import Grant, VoucherFacts
from api.schemas import (
    CreditLineRequest,
    FinancingRequest,
    IssueVoucherRequest,
    PaymentRefRequest,
    SplitRequest,
)
from api.services import Services
from api.services.human import humanize
from api.services.rows import account_names, org_names
from api.writes import Outcome, Write
from ledger.audit.bundle import build_voucher_bundle, bundle_to_text
from ledger.audit.report import People
from ledger.audit.voucher_export import voucher_csv, voucher_json, voucher_trail, voucher_xlsx
from ledger.audit.vouchers import verify_voucher
from ledger.audit.workbook import XLSX_MEDIA_TYPE
from ledger.chain.contract import LedgerContract
from ledger.chain.deploy import connect_vouchers
from ledger.chain.vouchers import PartInfo, VoucherContract, VoucherState
from ledger.errors import (
    ConflictError,
    ContractRevertError,
    DeploymentError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from ledger.mirror.read import Mirror
from ledger.mirror.voucher_read import VoucherReader, voucher_tree
from ledger.monitoring.alerts import Alert
from ledger.protocol.codes import PartState
from ledger.protocol.dates import iso_date, iso_time
from ledger.protocol.hashchain import part_id_of
from ledger.protocol.money import yuan_text

__all__ = [
    "accept_financing",
    "bundle",
    "contract",
    "export",
    "exposure",
    "financing_book",
    "issue",
    "overview",
    "request_financing",
    "set_credit_line",
    "settle",
    "split",
    "verification",
    "voucher",
    "voucher_alerts",
]

ZERO_ORG = "0x" + "00" * 32
_alerts_t: sa.Table = Alert.__table__  # type: ignore[attr-defined]
DAY = 86_400


# ------------------------------------------------------------------------------------------------ plumbing


def contract(services: Services) -> VoucherContract:
    """The deployment's voucher contract (connected once per process)."""
    found = getattr(services, "vouchers", None)
    if found is None:
        try:
            found = connect_vouchers(services.client, services.deployment)
        except DeploymentError as exc:  # an older deployment: a clear 409 saying what to do, not a 500
            raise ConflictError(
                "This deployment has no supply-chain voucher contract, so vouchers cannot be written.",
                hint=exc.hint,
            ) from None
        services.vouchers = found
    return found


def _day_seconds(day: date) -> int:
    """A calendar day as its first second, midnight UTC (as a loan's maturity is entered)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def org_of(services: Services, ref: str, what: str) -> str:
    """A participant's organisation id from its name (or the org id itself, 0x + 64 hex)."""
    text = ref.strip()
    if text.startswith("0x") and len(text) == 66:
        return text.lower()
    found = services.directory.get().find(text)
    if found is None:
        names = sorted(p.name for p in services.directory.get())
        raise ValidationError(
            f"No participant is called {text!r} (the {what}).",
            hint=f"Name a registered participant ({', '.join(names[:8])}) or give its organisation id.",
        )
    return str(found.org_id).lower()


def _name(services: Services, org: str | None) -> str | None:
    if org is None or org == ZERO_ORG:
        return None
    return org_names(services).get(org) or org


def _known_voucher(vc: VoucherContract, voucher_id: str) -> VoucherState:
    try:
        return vc.get_voucher(voucher_id)
    except ContractRevertError:
        raise NotFoundError(
            f"There is no voucher {voucher_id}.", hint="GET /v1/vouchers lists the vouchers you take part in."
        ) from None


def _known_part(vc: VoucherContract, voucher_id: str, part_id: int) -> PartInfo:
    try:
        return vc.get_part(voucher_id, part_id)
    except ContractRevertError:
        raise NotFoundError(
            f"Voucher {voucher_id} has no part {part_id}.", hint="GET /v1/vouchers/{voucher} shows its parts."
        ) from None


def _chain_facts(
    session: Session, services: Services, vc: VoucherContract, voucher_id: str, part_id: int
) -> VoucherFacts:
    """The caller-relevant facts of one part, read from the chain: who issued, who holds it, whom it was
    offered to, which bank granted the core's line."""
    v = _known_voucher(vc, voucher_id)
    part = _known_part(vc, voucher_id, part_id)
    line = vc.credit_line_of(v.core_org)
    bank, _ = vc.financing_request_of(voucher_id, part_id)
    holder_org = _account_org(services, part.holder)
    # every organisation that holds or held a part of the tree (the mirror's), and this part's holder now
    known = load_one(session, voucher_id)
    tree = facts_of(services, known, None) if known else None
    financing = {bank} if bank != ZERO_ORG else set()
    if part.state is PartState.FINANCED and holder_org is not None:
        financing.add(holder_org)  # the bank that financed it holds it now
    return VoucherFacts(
        voucher_id=voucher_id,
        core_org=v.core_org.lower(),
        line_bank_org=line.bank_org.lower() if line.bank_org != ZERO_ORG else None,
        financing_bank_orgs=frozenset(o.lower() for o in financing),
        holder_orgs=frozenset({holder_org} if holder_org else set())
        | (tree.holder_orgs if tree else frozenset()),
    )


def _account_org(services: Services, account: str) -> str | None:
    for p in services.directory.get():
        if account in p.accounts.values():
            return str(p.org_id).lower()
    try:
        return services.ledger.organization_of(account).lower()
    except Exception:  # pragma: no cover - an account the ledger does not know has no organisation
        return None


def _voucher_view(ledger: LedgerContract, services: Services) -> VoucherContract:
    """The voucher contract journaled like the ledger view the write path handed us (same journal)."""
    return contract(services).journaled(ledger.journal)


# ------------------------------------------------------------------------------------------------ writes


def set_credit_line(session: Session, write: Write, body: CreditLineRequest) -> JSONResponse:
    caller, services = write.caller, write.services
    policy.require_voucher(caller, "vouchers.credit_line")
    core_org = org_of(services, body.core, "core enterprise")
    expiry = _day_seconds(body.expiry) + DAY - 1  # the whole last day

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).set_credit_line(
            caller.signer(), core_org=core_org, limit=body.limit, expiry=expiry, terms_hash=body.terms_hash
        )
        return Outcome(tx, {"core_org": core_org, "limit_yuan": yuan_text(body.limit)})

    return write.record(body, action, path="/v1/vouchers/credit-lines")


def issue(session: Session, write: Write, body: IssueVoucherRequest) -> JSONResponse:
    caller, services = write.caller, write.services
    policy.require_voucher(caller, "vouchers.issue")
    voucher_id = body.voucher_id or "0x" + secrets.token_hex(32)
    maturity = body.maturity

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).issue_voucher(
            caller.signer(),
            voucher_id=voucher_id,
            holder=body.holder,
            face_value=body.face_value,
            maturity=maturity,
            currency=body.currency,
            invoice_hash=body.invoice_hash,
        )
        return Outcome(tx, {"voucher_id": voucher_id, "part_id": 1, "maturity_date": iso_date(maturity, UTC)})

    # a voucher id made here is not part of the request: a retry with the same key replays the first answer
    return write.record(body, action, path="/v1/vouchers")


def _require_holder(
    session: Session, services: Services, caller: Caller, voucher_id: str, part_id: int, action: str
) -> None:
    vc = contract(services)
    facts = _chain_facts(session, services, vc, voucher_id, part_id)
    policy.require_voucher(caller, action, facts)
    part = vc.get_part(voucher_id, part_id)
    if part.holder != caller.address:
        holder = account_names(services).get(part.holder) or part.holder
        raise PermissionDeniedError(
            f"Part {part_id} of voucher {voucher_id} is held by {holder}; {caller.name} "
            f"({caller.address}) can {policy.VOUCHER_POLICY[action].what} only of a part it holds.",
            hint="Use the token of the account that holds the part; GET /v1/vouchers lists what you hold.",
        )


def split(session: Session, write: Write, voucher_id: str, part_id: int, body: SplitRequest) -> JSONResponse:
    caller, services = write.caller, write.services
    voucher_id = voucher_id.lower()
    policy.require_voucher(caller, "voucher.split")
    _require_holder(session, services, caller, voucher_id, part_id, "voucher.split")
    pieces = [(t.to, t.amount) for t in body.transfers]
    names = account_names(services)

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).split_transfer(caller.signer(), voucher_id, part_id, pieces)
        made = [
            {
                "part_id": part_id_of(str(e.args["head"])),
                "holder": str(e.args["to"]),
                "holder_name": names.get(str(e.args["to"])),
                "amount": int(e.args["amount"]),
                "amount_yuan": yuan_text(int(e.args["amount"])),
            }
            for e in tx.events
            if e.name == "PartTransferred"
        ]
        return Outcome(tx, {"voucher_id": voucher_id, "part_id": part_id, "parts": made})

    return write.record(body, action, path=f"/v1/vouchers/{voucher_id}/parts/{part_id}/split")


def request_financing(
    session: Session, write: Write, voucher_id: str, part_id: int, body: FinancingRequest
) -> JSONResponse:
    caller, services = write.caller, write.services
    voucher_id = voucher_id.lower()
    policy.require_voucher(caller, "voucher.request_financing")
    _require_holder(session, services, caller, voucher_id, part_id, "voucher.request_financing")
    bank_org = org_of(services, body.bank, "bank")
    bank = next((p for p in services.directory.get() if str(p.org_id).lower() == bank_org), None)
    if bank is not None and bank.role != "lender":
        raise ValidationError(
            f"{bank.name} is registered as {bank.role}, not as a bank; only a bank can finance a part.",
            hint="Name a lender (GET /v1/participants lists them).",
        )

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).request_financing(
            caller.signer(),
            voucher_id=voucher_id,
            part_id=part_id,
            bank_org=bank_org,
            discount_rate_bps=body.discount_rate_bps,
        )
        return Outcome(tx, {"voucher_id": voucher_id, "part_id": part_id, "bank_org": bank_org})

    return write.record(body, action, path=f"/v1/vouchers/{voucher_id}/parts/{part_id}/financing")


def accept_financing(
    session: Session, write: Write, voucher_id: str, part_id: int, body: PaymentRefRequest
) -> JSONResponse:
    caller, services = write.caller, write.services
    voucher_id = voucher_id.lower()
    policy.require_voucher(caller, "voucher.accept_financing")
    vc = contract(services)
    facts = _chain_facts(session, services, vc, voucher_id, part_id)
    policy.require_voucher(caller, "voucher.accept_financing", facts)
    asked, _ = vc.financing_request_of(voucher_id, part_id)
    if asked.lower() != caller.org_id.lower():
        whom = _name(services, asked)
        raise PermissionDeniedError(
            f"Part {part_id} of voucher {voucher_id} "
            + (
                f"was offered to {whom} for financing"
                if whom
                else "was not offered to any bank for financing"
            )
            + f"; {caller.name} can accept financing only of a part offered to its bank.",
            hint="The part's holder asks a bank first (POST /v1/vouchers/{voucher}/parts/{part}/financing).",
        )

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).accept_financing(
            caller.signer(), voucher_id=voucher_id, part_id=part_id, payment_ref=body.payment_ref
        )
        financed = next((e.args for e in tx.events if e.name == "PartFinanced"), None)
        extra: dict[str, Any] = {"voucher_id": voucher_id, "part_id": part_id}
        if financed is not None:
            extra["financing"] = _financing_terms(financed)
        return Outcome(tx, extra)

    return write.record(body, action, path=f"/v1/vouchers/{voucher_id}/parts/{part_id}/financing/accept")


def _financing_terms(args: Any) -> dict[str, Any]:
    """A PartFinanced event's discount as people read it (贴现利息 = 票面金额 × 年贴现率 × 贴现天数 / 360)."""
    face, interest, paid = int(args["face"]), int(args["interest"]), int(args["paid"])
    return {
        "face": face,
        "face_yuan": yuan_text(face),
        "discount_rate_bps": int(args["discountRateBps"]),
        "days": int(args["discountDays"]),
        "interest": interest,
        "interest_yuan": yuan_text(interest),
        "paid": paid,
        "paid_yuan": yuan_text(paid),
    }


def settle(
    session: Session, write: Write, voucher_id: str, part_id: int, body: PaymentRefRequest
) -> JSONResponse:
    caller, services = write.caller, write.services
    voucher_id = voucher_id.lower()
    policy.require_voucher(caller, "voucher.settle")
    vc = contract(services)
    facts = _chain_facts(session, services, vc, voucher_id, part_id)
    policy.require_voucher(caller, "voucher.settle", facts)

    def action(ledger: LedgerContract) -> Outcome:
        tx = _voucher_view(ledger, services).settle(
            caller.signer(), voucher_id=voucher_id, part_id=part_id, payment_ref=body.payment_ref
        )
        paid = next((e.args for e in tx.events if e.name == "PartSettled"), None)
        extra: dict[str, Any] = {"voucher_id": voucher_id, "part_id": part_id}
        if paid is not None:
            extra |= {"paid_to": str(paid["holder"]), "amount": int(paid["amount"])}
            extra["amount_yuan"] = yuan_text(int(paid["amount"]))
        return Outcome(tx, extra)

    return write.record(body, action, path=f"/v1/vouchers/{voucher_id}/parts/{part_id}/settle")


# ------------------------------------------------------------------------------------------------ reads


@dataclass
class Part:
    """One part of a voucher as the pages read it (normalised from the mirror)."""

    voucher_id: str
    part_id: int
    parent_part_id: int | None
    holder: str
    amount: int  # face value the part was created with (fen)
    remaining: int
    state: int  # PartState
    bank_org: str | None = None  # the bank asked to finance it (or that financed it)
    discount_rate_bps: int | None = None
    seller: str | None = None  # who sold it to the bank
    face: int | None = None  # what the bank discounted
    days: int | None = None
    interest: int | None = None
    paid: int | None = None
    financed_block: int | None = None
    settled_amount: int | None = None
    settled_block: int | None = None
    block_number: int = 0
    transaction_hash: str = ""


@dataclass
class VoucherRow:
    voucher_id: str
    core_org: str
    face_value: int
    settled: int
    maturity: int
    currency: str
    invoice_hash: str
    head: str
    block_number: int
    transaction_hash: str
    parts: list[Part] = field(default_factory=list)


@dataclass
class Line:
    core_org: str
    bank_org: str
    limit: int
    outstanding: int
    expiry: int
    terms_hash: str
    block_number: int


def _now(session: Session) -> int:
    """The chain's time as the mirror last saw it (its newest indexed block), else the wall clock."""
    mirror = Mirror(session)
    checkpoint = mirror.checkpoint()
    if checkpoint is not None:
        stamp = mirror.block_times([checkpoint.block_number]).get(checkpoint.block_number)
        if stamp is not None:
            return int(stamp)
    return int(time.time())


def overdue(part: Part, maturity: int, now: int) -> bool:
    """A part with money left to pay at or after its maturity (as the monitor counts it) (到期未兑付)."""
    return part.state != PartState.SETTLED and part.remaining > 0 and now >= maturity


def part_status(part: Part, maturity: int, now: int) -> tuple[str, str, str]:
    """(key, English, Chinese) of a part's state; an unsettled part past maturity is overdue."""
    if overdue(part, maturity, now):
        return "overdue", "overdue: unpaid past maturity", "到期未兑付"
    s = PartState(part.state)
    if s is PartState.HELD and part.remaining == 0:
        return "passed_on", "passed on in full", "已全部转让"
    return s.name.lower(), s.label, s.label_zh


def voucher_status(v: VoucherRow, now: int) -> tuple[str, str, str]:
    if v.settled >= v.face_value:
        return "settled", "settled", "已兑付"
    if any(overdue(p, v.maturity, now) for p in v.parts):
        return "overdue", "overdue: unpaid past maturity", "到期未兑付"
    return "outstanding", "outstanding", "未到期"


def facts_of(services: Services, v: VoucherRow, line: Line | None) -> VoucherFacts:
    """The policy's facts of a mirrored voucher: every organisation that holds or held a part (sellers of
    financed parts included), every bank asked to finance one, the bank of the core's line."""
    orgs = _account_orgs(services)
    holders = {orgs.get(p.holder) for p in v.parts} | {orgs.get(p.seller) for p in v.parts if p.seller}
    banks = {p.bank_org for p in v.parts if p.bank_org}
    return VoucherFacts(
        voucher_id=v.voucher_id,
        core_org=v.core_org,
        line_bank_org=line.bank_org if line is not None else None,
        financing_bank_orgs=frozenset(b for b in banks if b),
        holder_orgs=frozenset(o for o in holders if o),
    )


def _account_orgs(services: Services) -> dict[str, str]:
    return {a: str(p.org_id).lower() for p in services.directory.get() for a in p.accounts.values()}


def branch(v: VoucherRow, caller: Caller) -> list[Part]:
    """What a holder (or a bank asked to finance) sees of a voucher, as a supplier sees its own lots: the
    parts it holds or held and the parts it was asked to finance, the parts above them up to the issue, and
    the parts it passed on (their holders are who it paid)."""
    by_id = {p.part_id: p for p in v.parts}
    own = {
        p.part_id
        for p in v.parts
        if p.holder in caller.org_accounts
        or (p.seller is not None and p.seller in caller.org_accounts)
        or (p.bank_org is not None and p.bank_org == caller.org_id.lower())
    }
    seen = set(own)
    for part_id in own:
        parent = by_id[part_id].parent_part_id
        while parent is not None and parent not in seen:
            seen.add(parent)
            parent = by_id[parent].parent_part_id
    seen |= {p.part_id for p in v.parts if p.parent_part_id in own}
    return [p for p in v.parts if p.part_id in seen]


def _part_out(services: Services, p: Part, v: VoucherRow, now: int, names: dict[str, str]) -> dict[str, Any]:
    key, label, label_zh = part_status(p, v.maturity, now)
    out: dict[str, Any] = {
        "part_id": p.part_id,
        "parent_part_id": p.parent_part_id,
        "holder": p.holder,
        "holder_name": names.get(p.holder),
        "amount": p.amount,
        "remaining": p.remaining,
        "currency": v.currency,
        "status": key,
        "status_label": label,
        "status_label_zh": label_zh,
        "children": [c.part_id for c in v.parts if c.parent_part_id == p.part_id],
        "block_number": p.block_number,
        "transaction_hash": p.transaction_hash,
        "financing": None,
        "settlement": None,
    }
    if p.bank_org is not None:
        out["financing"] = {
            "bank_org": p.bank_org,
            "bank_name": _name(services, p.bank_org),
            "discount_rate_bps": p.discount_rate_bps,
            "seller": p.seller,
            "seller_name": names.get(p.seller or ""),
            "face": p.face,
            "days": p.days,
            "interest": p.interest,
            "paid": p.paid,
            "financed_block": p.financed_block,
        }
    if p.settled_block is not None:
        out["settlement"] = {
            "amount": p.settled_amount,
            "paid_to": p.holder,
            "settled_block": p.settled_block,
        }
    return out


def voucher_out(
    session: Session, services: Services, v: VoucherRow, parts: list[Part], now: int, *, partial: bool
) -> dict[str, Any]:
    names = account_names(services)
    key, label, label_zh = voucher_status(v, now)
    out = {
        "voucher_id": v.voucher_id,
        "core_org": v.core_org,
        "core_name": _name(services, v.core_org),
        "face_value": v.face_value,
        "face_value_yuan": yuan_text(v.face_value, v.currency),
        "settled": v.settled,
        "settled_yuan": yuan_text(v.settled, v.currency),
        "outstanding": v.face_value - v.settled,
        "outstanding_yuan": yuan_text(v.face_value - v.settled, v.currency),
        "currency": v.currency,
        "maturity": v.maturity,
        "maturity_date": iso_date(v.maturity, UTC),
        "invoice_hash": v.invoice_hash,
        "head": v.head,
        "status": key,
        "status_label": label,
        "status_label_zh": label_zh,
        "block_number": v.block_number,
        "transaction_hash": v.transaction_hash,
        "partial": partial,
        "parts": [_part_out(services, p, v, now, names) for p in parts],
        "alerts": voucher_alerts(session, v.voucher_id, {p.part_id for p in parts}),
    }
    return humanize(session, services.settings.bank_zone, out, v.currency)  # type: ignore[no-any-return]


def voucher_alerts(session: Session, voucher_id: str, part_ids: set[int]) -> list[dict[str, Any]]:
    """The monitor's alerts on the voucher's parts the caller sees (a part unpaid past maturity, 到期未兑付):
    the monitor keeps them in `alerts` with the voucher id as subject and "part:N" as cause."""
    t = _alerts_t
    rows = session.execute(sa.select(t).where(t.c.loan_id == voucher_id).order_by(t.c.id)).all()
    out = []
    for r in rows:
        part = r.cause_key.removeprefix("part:")
        if not part.isdigit() or int(part) not in part_ids:
            continue
        en, zh = RULE_LABELS.get(r.rule, (r.rule, r.rule))
        out.append(
            {
                "id": r.id,
                "rule": r.rule,
                "rule_label": en,
                "rule_zh": zh,
                "severity": r.severity,
                "state": r.state,
                "part_id": int(part),
                "title": r.title,
                "explanation": r.explanation,
            }
        )
    return out


def _find(session: Session, services: Services, voucher_id: str) -> VoucherRow:
    found = load_one(session, voucher_id.lower())
    if found is None:
        raise NotFoundError(
            f"There is no voucher {voucher_id} (or the mirror has not caught up yet).",
            hint="GET /v1/vouchers lists the vouchers you take part in.",
        )
    return found


def voucher(session: Session, services: Services, caller: Caller, voucher_id: str) -> dict[str, Any]:
    """A voucher's tree: the whole of it for its core enterprise, the bank of its line and auditors; a
    holder's or asked bank's own branch; nothing (404) for anyone unrelated."""
    policy.require_voucher(caller, "voucher.read")
    v = _find(session, services, voucher_id)
    facts = facts_of(services, v, line_of(session, v.core_org))
    grant = policy.voucher_grant(caller, "voucher.read", facts)
    if grant is Grant.NO:
        raise NotFoundError(
            f"There is no voucher {voucher_id} you take part in.",
            hint="GET /v1/vouchers lists the vouchers you take part in.",
        )
    parts = v.parts if grant is Grant.YES else branch(v, caller)
    return voucher_out(session, services, v, parts, _now(session), partial=grant is not Grant.YES)


def _whole_tree(session: Session, services: Services, caller: Caller, voucher_id: str) -> VoucherRow:
    """The voucher, for a caller allowed what covers every branch (`voucher.verification`: verification,
    bundle, export): the core enterprise, the bank of its line, auditors. A holder is told what it may see
    (403); anyone with no part in it finds no voucher (404)."""
    policy.require_voucher(caller, "voucher.verification")
    v = _find(session, services, voucher_id)
    facts = facts_of(services, v, line_of(session, v.core_org))
    if policy.voucher_grant(caller, "voucher.read", facts) is Grant.NO:
        raise NotFoundError(
            f"There is no voucher {voucher_id} you take part in.",
            hint="GET /v1/vouchers lists the vouchers you take part in.",
        )
    policy.require_voucher(caller, "voucher.verification", facts)
    return v


def verification(session: Session, services: Services, caller: Caller, voucher_id: str) -> dict[str, Any]:
    """Verify the mirrored voucher against the chain (part A's `verify_voucher`: every mirrored column to
    its chain source, the raw events, the hash chain recomputed to `headOf`). It covers every branch, so
    only the core enterprise, the bank of its line and auditors get it; a holder is told what it may see."""
    v = _whole_tree(session, services, caller, voucher_id)
    found = verify_voucher(services.engine, contract(services), v.voucher_id)
    out = {
        "voucher_id": found.voucher_id,
        "ok": found.ok,
        "block_number": found.block_number,
        "head_on_chain": found.head_on_chain,
        "head_recomputed": found.head_recomputed,
        "problems": found.problems,
        "summary": found.summary(),
    }
    return humanize(session, services.settings.bank_zone, out)  # type: ignore[no-any-return]


def bundle(session: Session, services: Services, caller: Caller, voucher_id: str) -> tuple[str, str]:
    """The voucher's offline proof bundle (part A's `build_voucher_bundle`, verified before it is handed
    out) as (JSON text, file name); the same callers as verification. `fundflow verify-bundle` checks it."""
    v = _whole_tree(session, services, caller, voucher_id)
    deployment = services.deployment
    built = build_voucher_bundle(
        contract(services),
        v.voucher_id,
        from_block=deployment.vouchers_block_number or deployment.block_number,
    )
    at = int(built["header"]["number"], 16)
    return bundle_to_text(built), f"fundflow-voucher-bundle-{v.voucher_id[:10]}-block-{at}.json"


EXPORT_MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": XLSX_MEDIA_TYPE,
}


def export(
    session: Session,
    services: Services,
    caller: Caller,
    voucher_id: str,
    format: str,  # noqa: A002
) -> tuple[str | bytes, str, str]:
    """The voucher's trail verified and exported (`ledger.audit.voucher_export`) as (content, media type,
    file name): xlsx, csv (with a byte-order mark for Excel) or json; the same callers as verification."""
    v = _whole_tree(session, services, caller, voucher_id)
    people = People(names=account_names(services), orgs=org_names(services), zone=services.settings.bank_zone)
    trail = voucher_trail(services.engine, contract(services), v.voucher_id, people)
    at = trail.verification.block_number
    name = f"fundflow-voucher-{v.voucher_id[:10]}-block-{at}.{format}"
    if format == "xlsx":
        content: str | bytes = voucher_xlsx(trail)
    elif format == "csv":
        content = voucher_csv(trail, bom=True)
    else:
        content = voucher_json(trail)
    return content, EXPORT_MEDIA_TYPES[format], name


def _line_out(services: Services, line: Line) -> dict[str, Any]:
    return {
        "core_org": line.core_org,
        "core_name": _name(services, line.core_org),
        "bank_org": line.bank_org,
        "bank_name": _name(services, line.bank_org),
        "limit_yuan": yuan_text(line.limit),
        "used_yuan": yuan_text(line.outstanding),
        "available_yuan": yuan_text(max(line.limit - line.outstanding, 0)),
        "expiry_date": iso_date(line.expiry, UTC),
    }


def _labels(key_label: tuple[str, str, str]) -> dict[str, str]:
    key, label, label_zh = key_label
    return {"status": key, "status_label": label, "status_label_zh": label_zh}


def overview(session: Session, services: Services, caller: Caller) -> dict[str, Any]:
    """`GET /v1/vouchers`: per caller. A core enterprise: its credit line (used, available) and its payables
    by due date; a supplier: the parts it holds with money left, and whether it may ask to finance each; a
    bank: its financing book and its exposure per core enterprise; an auditor: every book and exposure."""
    policy.require_voucher(caller, "vouchers.list")
    out: dict[str, Any] = {"credit_line": None, "payables": [], "parts": [], "book": [], "exposure": []}
    # the chain time the states are as of (the mirror's newest block): overdue is counted from it
    as_of = _now(session)
    out |= {"as_of": as_of, "as_of_time": iso_time(as_of, services.settings.bank_zone)}
    if caller.role in ("lender", "auditor"):
        out["view"] = "bank" if caller.role == "lender" else "auditor"
        out["book"] = financing_book(session, services, caller)
        out["exposure"] = exposure(session, services, caller)
        return out
    now, org, reader = _now(session), caller.org_id.lower(), VoucherReader(session)
    line = line_of(session, org)
    if line is not None:
        out["credit_line"] = _line_out(services, line)
    names = account_names(services)
    for payable in reader.payables(org):  # by due date
        v = load_one(session, payable.voucher_id)
        assert v is not None
        holders = sorted({names.get(p.holder, p.holder) for p in v.parts if p.remaining})
        out["payables"].append(
            {
                "voucher_id": v.voucher_id,
                "face_value_yuan": yuan_text(v.face_value, v.currency),
                "outstanding_yuan": yuan_text(v.face_value - v.settled, v.currency),
                "currency": v.currency,
                "maturity_date": iso_date(v.maturity, UTC),
                "holders": holders,
                **_labels(voucher_status(v, now)),
            }
        )
    held = reader.held_parts(caller.org_accounts)
    vouchers = {vid: reader.voucher(vid) for vid in {p.voucher_id for p in held}}
    for p in sorted(held, key=lambda p: (_maturity(vouchers, p.voucher_id), p.block_number)):
        found = vouchers[p.voucher_id]
        assert found is not None
        part = _part_of(p, None, None)
        out["parts"].append(
            {
                "voucher_id": p.voucher_id,
                "part_id": p.part_id,
                "core_name": _name(services, found.core_org),
                "remaining_yuan": yuan_text(p.remaining, found.currency),
                "currency": found.currency,
                "maturity_date": iso_date(found.maturity, UTC),
                **_labels(part_status(part, found.maturity, now)),
                "may_finance": p.state == PartState.HELD and now < found.maturity,
            }
        )
    out["view"] = "core" if out["payables"] or line is not None else "supplier"
    return out


def _maturity(vouchers: dict[str, Any], voucher_id: str) -> int:
    found = vouchers.get(voucher_id)
    return int(found.maturity) if found is not None else 0


def _bank_orgs(services: Services, caller: Caller) -> list[str]:
    """The caller's bank, or for an auditor every bank in the directory."""
    if caller.role == "auditor":
        return sorted({str(p.org_id).lower() for p in services.directory.get() if p.role == "lender"})
    return [caller.org_id.lower()]


def financing_book(session: Session, services: Services, caller: Caller) -> list[dict[str, Any]]:
    """The parts a bank was asked to finance or financed (an auditor: every bank's), by due date."""
    policy.require_voucher(caller, "vouchers.book")
    now, reader, names = _now(session), VoucherReader(session), account_names(services)
    entries: list[tuple[Any, Part]] = []
    for bank in _bank_orgs(services, caller):
        for f in reader.financing_book(bank):
            part = next(p for p in reader.parts(f.voucher_id) if p.part_id == f.part_id)
            entries.append((reader.voucher(f.voucher_id), _part_of(part, f, None)))
        entries += [
            (reader.voucher(p.voucher_id), _part_of(p, None, None)) for p in reader.financing_requests(bank)
        ]
    book = []
    for v, p in sorted(entries, key=lambda e: (e[0].maturity, e[1].block_number)):
        requester = p.seller or p.holder
        book.append(
            {
                "voucher_id": v.voucher_id,
                "part_id": p.part_id,
                "core_name": _name(services, v.core_org),
                "bank_name": _name(services, p.bank_org),
                "requester_name": names.get(requester, requester),
                "discount_rate_bps": p.discount_rate_bps,
                "face_yuan": yuan_text(p.face if p.face is not None else p.remaining, v.currency),
                "interest_yuan": yuan_text(p.interest, v.currency) if p.interest is not None else None,
                "paid_yuan": yuan_text(p.paid, v.currency) if p.paid is not None else None,
                "days": p.days,
                "financed_block": p.financed_block,
                "currency": v.currency,
                "maturity_date": iso_date(v.maturity, UTC),
                **_labels(part_status(p, v.maturity, now)),
                "may_accept": p.state == PartState.FINANCING_REQUESTED
                and p.bank_org == caller.org_id.lower(),
            }
        )
    return book


def exposure(session: Session, services: Services, caller: Caller) -> list[dict[str, Any]]:
    """Per core enterprise: the line the bank granted (limit, outstanding vouchers) and what it financed that
    the core enterprise has not yet paid (an auditor: every bank's, one row per bank and core)."""
    policy.require_voucher(caller, "vouchers.exposure")
    reader, mirror = VoucherReader(session), Mirror(session)
    out = []
    for bank in _bank_orgs(services, caller):
        for e in reader.exposure(bank, mirror.org_accounts(bank)):
            out.append(
                {
                    "bank_org": bank,
                    "bank_name": _name(services, bank),
                    "core_org": e.core_org,
                    "core_name": _name(services, e.core_org),
                    "limit_yuan": yuan_text(e.line_limit) if e.line_limit is not None else None,
                    "outstanding_yuan": yuan_text(e.line_outstanding)
                    if e.line_outstanding is not None
                    else None,
                    "financed_parts": e.financed_parts,
                    "financed_yuan": yuan_text(e.face_outstanding),
                    "currency": "CNY",
                }
            )
    return out


# ------------------------------------------------------------------------------------------------ loading
# The mirror's read model (ledger.mirror.voucher_read) as the rows the pages and answers are built from.


def _part_of(p: Any, f: Any | None, settled: Any | None) -> Part:
    part = Part(
        p.voucher_id,
        int(p.part_id),
        p.parent_part_id,
        p.holder,
        int(p.amount),
        int(p.remaining),
        int(p.state),
        bank_org=p.bank_org,
        discount_rate_bps=p.discount_rate_bps,
        settled_amount=None if p.settled_amount is None else int(p.settled_amount),
        settled_block=p.settled_block,
        block_number=int(p.block_number),
        transaction_hash=p.transaction_hash,
    )
    if f is not None:
        part.seller, part.face, part.days = f.seller, int(f.face), int(f.discount_days)
        part.interest, part.paid, part.financed_block = int(f.interest), int(f.paid), int(f.block_number)
    return part


def load_one(session: Session, voucher_id: str) -> VoucherRow | None:
    """One mirrored voucher with its parts in chain order (each financed part with its discount)."""
    tree = voucher_tree(session, voucher_id)
    if tree is None:
        return None
    v = tree.voucher
    row = VoucherRow(v.voucher_id, v.core_org, int(v.face_value), int(v.settled), int(v.maturity), v.currency,
                     v.invoice_hash, v.head, int(v.block_number), v.transaction_hash)  # fmt: skip
    nodes = sorted(tree.parts, key=lambda n: (n.part.block_number, n.part.log_index))
    row.parts = [_part_of(n.part, n.financing, n.settlement) for n in nodes]
    return row


def line_of(session: Session, core_org: str) -> Line | None:
    """The core enterprise's mirrored credit line."""
    r = VoucherReader(session).credit_line(core_org)
    if r is None:
        return None
    return Line(r.core_org, r.bank_org, int(r.line_limit), int(r.outstanding), int(r.expiry), r.terms_hash,
                int(r.block_number))  # fmt: skip
