"""Loan types: default purpose sets (allowed and prohibited) and when a payment must be entrusted (受托支付).

Defaults follow the 2024 rules (个人贷款管理办法, 流动资金贷款管理办法, 固定资产贷款管理办法, in force
2024-07-01), as DOMAIN.md states them; each is a bank setting (`FUNDFLOW_LOAN_TYPE_POLICIES`, per bank
organisation id or "*" for every bank):
- personal (个人贷款): entrusted by default; self-paid only up to CNY 300,000.
- personal business (个人经营贷款): self-paid only up to CNY 500,000.
- working capital (流动资金贷款): a single payment to one counterparty above CNY 10,000,000 is entrusted; land
  and construction are not its purpose.
- fixed asset and project (固定资产贷款, 项目贷款): a single payment above 5% of the project's total
  investment (`total_investment` in the terms) or above CNY 10,000,000 is entrusted; land and construction
  are their purpose (a development loan may pay for land).
- supply chain (供应链融资): the bank pays the counterparty: every payment is entrusted.
Securities, equity investment (securities code), onward lending and repaying other debt are prohibited for
every type; real estate for every type but fixed asset and project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ledger.protocol.purposes import Purpose
from ledger.protocol.terms import LoanType

__all__ = ["DEFAULT_POLICIES", "LoanTypePolicy", "parse_policies", "policy_for"]

YUAN = 100  # fen


@dataclass(frozen=True)
class LoanTypePolicy:
    """What a loan type allows, prohibits, and when its payments must be entrusted."""

    loan_type: LoanType
    allowed: frozenset[int]  # the default purpose set at opening
    prohibited: frozenset[int]
    entrusted_above: int | None  # a single self-paid payment above this (fen) should have been entrusted
    entrusted_share: Decimal | None = None  # ...or above this share of the project's total investment
    rule: str = ""  # the rule's name, as the alert cites it

    def entrusted_limit(self, total_investment: int | None) -> int | None:
        """The largest single payment the borrower may make itself (None: no limit)."""
        limits = [x for x in (self.entrusted_above,) if x is not None]
        if self.entrusted_share is not None and total_investment:
            limits.append(int(Decimal(total_investment) * self.entrusted_share))
        return min(limits) if limits else None


_BANNED = frozenset({Purpose.SECURITIES, Purpose.ONWARD_LENDING, Purpose.DEBT_REPAYMENT})
_OPERATING = frozenset(
    {
        Purpose.RAW_MATERIALS,
        Purpose.GOODS,
        Purpose.WAGES,
        Purpose.RENT_UTILITIES,
        Purpose.TAXES,
        Purpose.LOGISTICS,
        Purpose.SERVICES,
        Purpose.ENERGY,
        Purpose.WORKING_CAPITAL,
    }
)
_INVESTMENT = frozenset({Purpose.EQUIPMENT, Purpose.CONSTRUCTION, Purpose.SERVICES, Purpose.REAL_ESTATE})

DEFAULT_POLICIES: dict[LoanType, LoanTypePolicy] = {
    LoanType.PERSONAL: LoanTypePolicy(
        LoanType.PERSONAL,
        frozenset({Purpose.GOODS, Purpose.SERVICES}),
        _BANNED | {Purpose.REAL_ESTATE},
        300_000 * YUAN,
        rule="个人贷款管理办法 (2024): entrusted payment unless the counterparty cannot be known in advance "
        "and the amount is at most CNY 300,000",
    ),
    LoanType.PERSONAL_BUSINESS: LoanTypePolicy(
        LoanType.PERSONAL_BUSINESS,
        _OPERATING | {Purpose.EQUIPMENT},
        _BANNED | {Purpose.REAL_ESTATE},
        500_000 * YUAN,
        rule="个人贷款管理办法 (2024): personal business loans are self-paid only up to CNY 500,000",
    ),
    LoanType.WORKING_CAPITAL: LoanTypePolicy(
        LoanType.WORKING_CAPITAL,
        _OPERATING,
        _BANNED | {Purpose.REAL_ESTATE, Purpose.CONSTRUCTION},
        10_000_000 * YUAN,
        rule="流动资金贷款管理办法 (2024): a single payment to one counterparty above CNY 10,000,000 is "
        "entrusted",
    ),
    LoanType.FIXED_ASSET: LoanTypePolicy(
        LoanType.FIXED_ASSET,
        _INVESTMENT,
        _BANNED,
        10_000_000 * YUAN,
        Decimal("0.05"),
        rule="固定资产贷款管理办法 (2024): a single payment above 5% of total investment or CNY "
        "10,000,000 is entrusted",
    ),
    LoanType.PROJECT: LoanTypePolicy(
        LoanType.PROJECT,
        _INVESTMENT,
        _BANNED,
        10_000_000 * YUAN,
        Decimal("0.05"),
        rule="固定资产贷款管理办法 (2024, project finance): a single payment above 5% of total investment or "
        "CNY 10,000,000 is entrusted",
    ),
    LoanType.SUPPLY_CHAIN: LoanTypePolicy(
        LoanType.SUPPLY_CHAIN,
        _OPERATING,
        _BANNED | {Purpose.REAL_ESTATE},
        0,
        rule="supply-chain finance: the bank pays the counterparty named in the trade (every payment "
        "entrusted)",
    ),
}


def parse_policies(raw: Mapping[str, Any]) -> dict[str, dict[LoanType, LoanTypePolicy]]:
    """Per-bank overrides `{"<org id>|*": {"<loan type>": {"entrusted_above": "10000000.00",
    "entrusted_share": "0.05", "prohibited": [..], "allowed": [..]}}}` on top of the defaults."""
    out: dict[str, dict[LoanType, LoanTypePolicy]] = {}
    for bank, types in raw.items():
        if not isinstance(types, Mapping):
            raise ValueError(f"loan type policies for {bank!r} must be an object keyed by loan type")
        table = dict(DEFAULT_POLICIES)
        for name, change in types.items():
            base = DEFAULT_POLICIES[LoanType(name)]
            fields: dict[str, Any] = {}
            if "entrusted_above" in change:
                value = change["entrusted_above"]
                fields["entrusted_above"] = None if value is None else int(Decimal(str(value)) * YUAN)
            if "entrusted_share" in change:
                value = change["entrusted_share"]
                fields["entrusted_share"] = None if value is None else Decimal(str(value))
            for key in ("allowed", "prohibited"):
                if key in change:
                    fields[key] = frozenset(int(v) for v in change[key])
            table[base.loan_type] = replace(base, **fields)
        out[bank.lower()] = table
    return out


def policy_for(
    loan_type: LoanType, lender_org: str, policies: Mapping[str, Mapping[LoanType, LoanTypePolicy]]
) -> LoanTypePolicy:
    """The bank's policy for the type: its own override, else the "*" one, else the default."""
    for key in (lender_org.lower(), "*"):
        if key in policies:
            return policies[key][loan_type]
    return DEFAULT_POLICIES[loan_type]
