"""The access policy: may participant P do action A on resource R. One table (`POLICY`), read by every /v1
route's service and every dashboard page; docs/access-policy.md is generated from it (`policy_markdown`) and
a test keeps the two equal and walks every route and page for every relationship.

A caller stands in one relationship to a loan (`Rel`): its lender, another lender, its borrower, a supplier
(an enterprise holding lots in its trail, or paying out of them), an unrelated enterprise, an auditor, or no
token at all. An action is answered per relationship with a `Grant`: yes, own (only the caller's part: its
bank's loans, the lots it holds or paid, the payments it received; the service narrows), or no.

Actions on no loan in particular (`scope="caller"`) are answered by role: a lender counts as "lender of the
loan" and "another lender" alike, an enterprise as borrower, supplier and unrelated enterprise alike.
`ROUTES` names the action behind every route and page; a route or page without one fails the policy test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from ledger.errors import PermissionDeniedError

__all__ = [
    "POLICY",
    "ROUTES",
    "VOUCHER_POLICY",
    "Grant",
    "Rel",
    "Rule",
    "VRel",
    "VoucherFacts",
    "VoucherRule",
    "allowed",
    "caller_rel",
    "grant",
    "loan_rel",
    "policy_markdown",
    "require",
    "require_role",
    "require_voucher",
    "voucher_grant",
    "voucher_rel",
]


class Rel(StrEnum):
    """How a caller stands to a loan."""

    LENDER = "lender of the loan"
    OTHER_LENDER = "another lender"
    BORROWER = "borrower"
    SUPPLIER = "supplier in the trail"
    ENTERPRISE = "unrelated enterprise"
    AUDITOR = "auditor"
    ANONYMOUS = "no token"
    # issue 19: third parties a loan's lender engaged on it (a firm not engaged on a loan does not see it)
    APPRAISER = "engaged appraiser"
    LAW_FIRM = "engaged law firm"
    COLLECTION_AGENCY = "engaged collection agency"


class Grant(StrEnum):
    YES = "yes"
    OWN = "own"
    NO = "no"


YES, OWN, NO = Grant.YES, Grant.OWN, Grant.NO

# Why a refusal happened, as the caller reads it. "role": no one of the caller's role may; "servicing":
# only the loan's own bank; "whole_trail": it covers the whole trail; "risk_file": the borrower's risk file.
Refusal = Literal["role", "servicing", "whole_trail", "risk_file"]


@dataclass(frozen=True)
class Rule:
    what: str  # "see the terms", "disburse": the action in a sentence ("... can {what}")
    scope: Literal["loan", "caller"]
    grants: dict[Rel, Grant] = field(default_factory=dict)
    refusal: Refusal = "role"
    note: str = ""

    def of(self, rel: Rel) -> Grant:
        return self.grants.get(rel, NO)


def _rule(
    what: str,
    scope: Literal["loan", "caller"] = "loan",
    *,
    refusal: Refusal = "role",
    note: str = "",
    lender: Grant = NO,
    other_lender: Grant = NO,
    borrower: Grant = NO,
    supplier: Grant = NO,
    enterprise: Grant = NO,
    auditor: Grant = NO,
    anonymous: Grant = NO,
    appraiser: Grant = NO,
    law_firm: Grant = NO,
    collection_agency: Grant = NO,
) -> Rule:
    grants = {
        Rel.LENDER: lender,
        Rel.OTHER_LENDER: other_lender,
        Rel.BORROWER: borrower,
        Rel.SUPPLIER: supplier,
        Rel.ENTERPRISE: enterprise,
        Rel.AUDITOR: auditor,
        Rel.ANONYMOUS: anonymous,
        Rel.APPRAISER: appraiser,
        Rel.LAW_FIRM: law_firm,
        Rel.COLLECTION_AGENCY: collection_agency,
    }
    return Rule(what, scope, grants, refusal, note)


def _third_parties(g: Grant) -> dict[str, Any]:
    return {"appraiser": g, "law_firm": g, "collection_agency": g}


def _lenders(g: Grant) -> dict[str, Any]:
    return {"lender": g, "other_lender": g}


def _enterprises(g: Grant) -> dict[str, Any]:
    return {"borrower": g, "supplier": g, "enterprise": g}


# The borrower's risk file: its lender, its borrower and auditors see it; a supplier only takes part in it.
_RISK_FILE: dict[str, Any] = {"lender": YES, "borrower": YES, "auditor": YES, "refusal": "risk_file"}
# What covers the whole trail (verification, bundle, report, export).
_WHOLE_TRAIL: dict[str, Any] = {"lender": YES, "borrower": YES, "auditor": YES, "refusal": "whole_trail"}
_SERVICING: dict[str, Any] = {"lender": YES, "refusal": "servicing"}

POLICY: dict[str, Rule] = {
    # -- no loan in particular
    "public": _rule("use public pages", "caller", **_lenders(YES), **_enterprises(YES), auditor=YES,
                    anonymous=YES, **_third_parties(YES), note="health, sign-in, sign-out, language"),
    "participants.read": _rule("list participants", "caller", **_lenders(YES), **_enterprises(YES),
                               auditor=YES, **_third_parties(YES)),
    "loans.list": _rule("list loans", "caller", **_lenders(OWN), **_enterprises(OWN), auditor=YES,
                        **_third_parties(OWN),
                        note="own: a bank's loans; the loans an enterprise borrowed or holds lots of; "
                        "those a third party is engaged on"),
    "loans.open": _rule("open loans", "caller", **_lenders(YES)),
    "payments.received": _rule("see payments received", "caller", **_lenders(OWN), **_enterprises(OWN),
                               auditor=OWN, note="own: the lots paid to the caller's organisation"),
    "payments.pay": _rule("pay out of a lot", "caller", **_lenders(OWN), **_enterprises(OWN),
                          note="own: the holder of the lot or the loan's lender (the contract checks)"),
    "alerts.list": _rule("see monitoring alerts", "caller", **_lenders(OWN), auditor=YES,
                         note="own: the alerts of the bank's loans, and of the vouchers issued under its "
                         "credit lines or with a part it was asked to finance"),
    "documents.upload": _rule("upload documents", "caller", **_lenders(YES), **_enterprises(YES),
                              auditor=YES, **_third_parties(YES)),
    "documents.read": _rule("read documents", "caller", **_lenders(OWN), **_enterprises(OWN), auditor=OWN,
                            **_third_parties(OWN),
                            note="own: decided per document by the documents service: its uploaders, and who "
                            "sees a record the uploader attached it to (an auditor sees every record)"),
    # -- one loan: what is seen
    "loan.summary": _rule("see the loan", lender=YES, borrower=YES, supplier=YES, auditor=YES,
                          **_third_parties(YES),
                          note="a supplier's (or third party's) view leaves out the risk class, repaid and "
                          "outstanding unless its engagement covers them"),
    "loan.trail": _rule("see the trail", lender=YES, borrower=YES, supplier=OWN, auditor=YES,
                        note="own: the lots the supplier holds or paid out of"),
    "lot.read": _rule("see a lot", lender=YES, borrower=YES, supplier=OWN, auditor=YES,
                      note="own: a lot the supplier holds or paid"),
    "loan.terms": _rule("see the terms (schedule, counterparties, approval threshold)", **_RISK_FILE),
    "loan.terms_history": _rule("see every version of the terms, with when each came into force",
                                lender=YES, auditor=YES,
                                note="the bank's file of what each past event was made under; auditors "
                                "review it"),
    "loan.risk_class": _rule("see the risk class and its history", **_RISK_FILE),
    "loan.repayments": _rule("see repayments", **_RISK_FILE, collection_agency=YES),
    "loan.collateral": _rule("see collateral values", **_RISK_FILE, appraiser=YES, law_firm=YES),
    "loan.attestations": _rule("see attestations", **_RISK_FILE),
    "loan.suggestion": _rule("see classification suggestions", lender=YES, auditor=YES),
    "loan.alerts": _rule("see the loan's alerts", lender=YES, auditor=YES),
    "loan.verification": _rule("verify the whole trail", **_WHOLE_TRAIL),
    "loan.reports": _rule("get bundles, reports and exports", **_WHOLE_TRAIL),
    # -- one loan: what is done
    "loan.disburse": _rule("disburse", **_SERVICING),
    "loan.restructure": _rule("restructure loans", **_SERVICING),
    "loan.repay": _rule("record repayments", **_SERVICING),
    "loan.classify": _rule("classify loans", **_SERVICING),
    "loan.value_collateral": _rule("value collateral", **_SERVICING),
    "loan.attest": _rule("attest trails", "caller", auditor=YES, note="any loan"),
    "lot.confirm": _rule("confirm payments", "caller", **_enterprises(OWN),
                         note="own: a payment made to the caller's organisation"),
    "lot.dispute": _rule("dispute payments", "caller", **_enterprises(OWN),
                         note="own: a payment made to the caller's organisation"),
    "alert.read": _rule("see an alert", lender=YES, auditor=YES),
    "alert.handle": _rule("acknowledge or resolve alerts", **_SERVICING),
    # -- issue 20: the portfolio view (the bank's risk view of its borrowers: no enterprise sees it)
    "portfolio.read": _rule("see the portfolio (totals, classes, overdue, exposures, alerts)", "caller",
                            **_lenders(OWN), auditor=YES, note="own: the bank's own loans and their alerts"),
    # -- the post-loan file (issue 19): the bank's own risk view, not the borrower's file
    "loan.visits": _rule("see visits and interviews (findings, attendees, follow-ups)", lender=YES,
                         auditor=YES, note="the bank's internal risk view: the borrower does not see it"),
    "loan.record_visit": _rule("record visits and interviews", **_SERVICING),
    "loan.guarantees": _rule("see guarantees", **_RISK_FILE, law_firm=YES),
    "loan.guarantee": _rule("record and release guarantees", **_SERVICING),
    "loan.write_off": _rule("write loans off and record recoveries", **_SERVICING),
    "loan.preservation": _rule("file asset-preservation cases", **_SERVICING),
    "loan.preservation_file": _rule("see asset-preservation cases", lender=YES, auditor=YES, law_firm=YES,
                                    note="the bank's own legal file, and its engaged law firm's"),
    "loan.write_off_file": _rule("see the write-off reason and recoveries", lender=YES, auditor=YES,
                                 law_firm=YES, collection_agency=YES,
                                 note="the bank's own decision file; the law firm and collection agency it "
                                 "engaged recover after it"),
    # -- the post-loan file, second half (issue 19): the collateral register and third parties
    "loan.register_collateral": _rule("register collateral items and change them (status, haircut, "
                                      "release, substitution)", **_SERVICING),
    "loan.appraise": _rule("sign collateral valuations", appraiser=YES,
                           note="an appraiser the loan's lender engaged on it (the contract checks)"),
    "loan.engagements": _rule("see which third parties are engaged", lender=YES, auditor=YES,
                              **_third_parties(OWN), note="own: a third party sees its own engagement"),
    "loan.engage": _rule("engage and release appraisers, law firms and collection agencies", **_SERVICING),
    # -- loan servicing (issue 18)
    "portfolio.migration": _rule("see class migration (迁徙率)", "caller", **_lenders(OWN), auditor=YES,
                                 note="own: the bank's own loans"),
    "loan.classification_proposals": _rule("see class-change proposals (maker-checker)", **_SERVICING),
    # -- the behaviour score (issue 21): the bank's own risk view. The borrower, its suppliers, other banks
    # and third parties never see a loan's score; auditors do, as they see classification suggestions and
    # alerts: reviewing what the bank acted on (or did not) is their job.
    "loan.behaviour_score": _rule("see behaviour scores (score, band, probability of default, reasons)",
                                  lender=YES, auditor=YES,
                                  note="the bank's own risk view; auditors review it, the borrower never "
                                  "sees it"),
    "portfolio.scores": _rule("see the portfolio by behaviour-score band", "caller", **_lenders(OWN),
                              auditor=YES, note="own: the bank's own open loans"),
    "score_models.read": _rule("see the behaviour-score model card (model governance)", "caller",
                               **_lenders(YES), auditor=YES,
                               note="aggregates only (data dates, performance, bins): no loan's score"),
}  # fmt: skip

# The action behind every /v1 route (OpenAPI) and every dashboard page or form.
ROUTES: dict[str, str] = {
    "GET /v1/health": "public",
    "GET /v1/participants": "participants.read",
    "GET /v1/participants/me": "participants.read",
    "GET /v1/loans": "loans.list",
    "POST /v1/loans": "loans.open",
    "GET /v1/loans/{loan}": "loan.summary",
    "GET /v1/loans/{loan}/terms": "loan.terms",
    "GET /v1/loans/{loan}/terms-history": "loan.terms_history",
    "GET /v1/loans/{loan}/trail": "loan.trail",
    "POST /v1/loans/{loan}/disbursements": "loan.disburse",
    "POST /v1/loans/{loan}/restructure": "loan.restructure",
    "GET /v1/lots/{lot_id}": "lot.read",
    "POST /v1/lots/{lot_id}/confirm": "lot.confirm",
    "POST /v1/lots/{lot_id}/dispute": "lot.dispute",
    "GET /v1/payments/received": "payments.received",
    "POST /v1/payments": "payments.pay",
    "POST /v1/payments/batch": "payments.pay",
    "GET /v1/loans/{loan}/repayments": "loan.repayments",
    "POST /v1/loans/{loan}/repayments": "loan.repay",
    "GET /v1/loans/{loan}/classifications": "loan.risk_class",
    "GET /v1/loans/{loan}/collateral": "loan.collateral",
    "POST /v1/loans/{loan}/collateral": "loan.value_collateral",
    "GET /v1/loans/{loan}/attestations": "loan.attestations",
    "POST /v1/loans/{loan}/attestations": "loan.attest",
    "GET /v1/loans/{loan}/verification": "loan.verification",
    "GET /v1/loans/{loan}/bundle": "loan.reports",
    "GET /v1/loans/{loan}/report": "loan.reports",
    "GET /v1/loans/{loan}/export": "loan.reports",
    "POST /v1/documents": "documents.upload",
    "GET /v1/documents/{digest}": "documents.read",
    "GET /v1/documents/{digest}/verify": "documents.read",
    "GET /v1/alerts": "alerts.list",
    "GET /v1/alerts/{alert_id}": "alert.read",
    "POST /v1/alerts/{alert_id}/acknowledge": "alert.handle",
    "POST /v1/alerts/{alert_id}/resolve": "alert.handle",
    "GET /v1/loans/{loan}/classification-suggestion": "loan.suggestion",
    "POST /v1/loans/{loan}/classification": "loan.classify",
    # -- loan servicing (issue 18)
    "GET /v1/loans/{loan}/classification-proposals": "loan.classification_proposals",
    "POST /v1/classification-proposals/{proposal_id}/approve": "loan.classify",
    "POST /v1/classification-proposals/{proposal_id}/reject": "loan.classify",
    "GET /v1/portfolio/migration": "portfolio.migration",
    "GET /v1/portfolio/migration.csv": "portfolio.migration",
    "GET /dashboard/migration": "portfolio.migration",
    "GET /dashboard": "public",
    "GET /dashboard/": "public",
    "GET /dashboard/signin": "public",
    "POST /dashboard/signin": "public",
    "POST /dashboard/signout": "public",
    "GET /dashboard/lang/{lang}": "public",
    "GET /dashboard/loans": "loans.list",
    "GET /dashboard/loans/{loan}": "loan.summary",
    "GET /dashboard/documents/{digest}": "documents.read",
    "GET /dashboard/alerts": "alerts.list",
    "POST /dashboard/alerts/{alert_id}/acknowledge": "alert.handle",
    "POST /dashboard/alerts/{alert_id}/resolve": "alert.handle",
    "GET /dashboard/received": "payments.received",
    "POST /dashboard/lots/{lot_id}/confirm": "lot.confirm",
    "POST /dashboard/lots/{lot_id}/dispute": "lot.dispute",
    # issue 20: the loan page's download buttons (report, CSV, Excel, bundle)
    "GET /dashboard/loans/{loan}/download/{kind}": "loan.reports",
    "GET /dashboard/portfolio": "portfolio.read",
    "GET /dashboard/loans-export/{kind}": "loans.list",
    # -- the post-loan file (issue 19)
    "GET /v1/loans/{loan}/visits": "loan.visits",
    "POST /v1/loans/{loan}/visits": "loan.record_visit",
    "GET /v1/loans/{loan}/visit-schedule": "loan.visits",
    "POST /dashboard/loans/{loan}/visits": "loan.record_visit",
    "GET /v1/loans/{loan}/guarantees": "loan.guarantees",
    "POST /v1/loans/{loan}/guarantees": "loan.guarantee",
    "POST /v1/loans/{loan}/guarantees/{record_id}/release": "loan.guarantee",
    "GET /v1/loans/{loan}/write-off": "loan.write_off_file",
    "POST /v1/loans/{loan}/write-off": "loan.write_off",
    "POST /v1/loans/{loan}/recoveries": "loan.write_off",
    "POST /dashboard/loans/{loan}/write-off": "loan.write_off",
    "GET /v1/loans/{loan}/preservation": "loan.preservation_file",
    "POST /v1/loans/{loan}/preservation": "loan.preservation",
    # -- the collateral register and third parties (issue 19, second half)
    "GET /v1/loans/{loan}/collateral-register": "loan.collateral",
    "POST /v1/loans/{loan}/collateral-register": "loan.register_collateral",
    "POST /v1/loans/{loan}/collateral-register/{item_id}/appraisals": "loan.appraise",
    "GET /v1/loans/{loan}/engagements": "loan.engagements",
    "POST /v1/loans/{loan}/engagements": "loan.engage",
    "POST /v1/loans/{loan}/engagements/{participant}/end": "loan.engage",
    "POST /dashboard/loans/{loan}/collateral-register/{item_id}/appraisals": "loan.appraise",
    # -- the behaviour score (issue 21); a loan's own score rides on GET /v1/loans/{loan} and its page
    "GET /v1/portfolio/scores": "portfolio.scores",
    "GET /v1/score-models/latest": "score_models.read",
    "GET /dashboard/scores": "portfolio.scores",
    "GET /dashboard/score-models/latest": "score_models.read",
    # -- supply-chain vouchers (issue 22): actions of VOUCHER_POLICY
    "GET /v1/vouchers": "vouchers.list",
    "POST /v1/vouchers": "vouchers.issue",
    "POST /v1/vouchers/credit-lines": "vouchers.credit_line",
    "GET /v1/vouchers/financing-book": "vouchers.book",
    "GET /v1/vouchers/exposure": "vouchers.exposure",
    "GET /v1/vouchers/{voucher}": "voucher.read",
    "GET /v1/vouchers/{voucher}/verification": "voucher.verification",
    "GET /v1/vouchers/{voucher}/bundle": "voucher.verification",
    "GET /v1/vouchers/{voucher}/export": "voucher.verification",
    "POST /v1/vouchers/{voucher}/parts/{part}/split": "voucher.split",
    "POST /v1/vouchers/{voucher}/parts/{part}/financing": "voucher.request_financing",
    "POST /v1/vouchers/{voucher}/parts/{part}/financing/accept": "voucher.accept_financing",
    "POST /v1/vouchers/{voucher}/parts/{part}/settle": "voucher.settle",
    "GET /dashboard/vouchers": "vouchers.list",
    "GET /dashboard/vouchers/{voucher}": "voucher.read",
    "GET /dashboard/vouchers/{voucher}/export": "voucher.verification",
    "POST /dashboard/vouchers/{voucher}/parts/{part}/financing": "voucher.request_financing",
    "POST /dashboard/vouchers/{voucher}/parts/{part}/financing/accept": "voucher.accept_financing",
    "POST /dashboard/vouchers/{voucher}/parts/{part}/settle": "voucher.settle",
}

# What the loan page shows beside the trail, each section behind its own action.
LOAN_PAGE_SECTIONS: dict[str, str] = {
    "verification": "loan.verification",
    "loan-alerts": "loan.alerts",
    "attestations": "loan.attestations",
    "repayments": "loan.repayments",
    "classifications": "loan.risk_class",
    "collateral": "loan.collateral",
    "downloads": "loan.reports",
    "visits": "loan.visits",
    "guarantees": "loan.guarantees",
    "write-off": "loan.write_off_file",
    "preservation": "loan.preservation_file",
    "collateral-register": "loan.collateral",
    "engagements": "loan.engagements",
    "servicing": "loan.suggestion",  # issue 18: days past due, floor and criteria, observation period
    "behaviour-score": "loan.behaviour_score",  # issue 21: score, band, reasons
}

_ROLE_REL = {"lender": Rel.LENDER, "enterprise": Rel.ENTERPRISE, "auditor": Rel.AUDITOR,
             "appraiser": Rel.APPRAISER, "law_firm": Rel.LAW_FIRM,
             "collection_agency": Rel.COLLECTION_AGENCY}  # fmt: skip


def caller_rel(caller: Any | None) -> Rel:
    """The caller's relationship when no loan is concerned (or the loan is not mirrored yet)."""
    if caller is None:
        return Rel.ANONYMOUS
    return _ROLE_REL.get(caller.role, Rel.ENTERPRISE)


def loan_rel(caller: Any | None, loan: Any | None) -> Rel:
    """How `caller` stands to `loan` (a mirrored loan row the caller may see, or None: not mirrored yet).
    An enterprise that sees a loan it did not borrow holds or paid lots of it: a supplier."""
    if caller is None or loan is None:
        return caller_rel(caller)
    if caller.role == "auditor":
        return Rel.AUDITOR
    if caller.role in ("appraiser", "law_firm", "collection_agency"):
        # engaged on this loan in its role (the access scope), else it stands to it as an unrelated party
        engaged = loan.loan_id in getattr(caller, "engaged_loans", ())
        return _ROLE_REL[caller.role] if engaged else Rel.ENTERPRISE
    if caller.role == "lender":
        return Rel.LENDER if loan.lender_org == caller.org_id else Rel.OTHER_LENDER
    if loan.borrower in caller.org_accounts:
        return Rel.BORROWER
    return Rel.SUPPLIER


def grant(caller: Any | None, action: str, loan: Any | None = None) -> Grant:
    if action in VOUCHER_POLICY:  # asked by the dashboard's menu: the caller-scope answer, by role
        if caller is not None and caller.role not in _V_ROLE:
            return NO  # a third party: refused by role (require_voucher), so no menu entry either
        return voucher_grant(caller, action)
    rule = POLICY[action]
    rel = caller_rel(caller) if rule.scope == "caller" else loan_rel(caller, loan)
    return rule.of(rel)


def allowed(caller: Any | None, action: str, loan: Any | None = None) -> bool:
    return grant(caller, action, loan) is not NO


def _roles_allowed(rule: Rule) -> list[str]:
    roles = {Rel.LENDER: "lender", Rel.OTHER_LENDER: "lender", Rel.BORROWER: "enterprise",
             Rel.SUPPLIER: "enterprise", Rel.ENTERPRISE: "enterprise", Rel.AUDITOR: "auditor",
             Rel.APPRAISER: "appraiser", Rel.LAW_FIRM: "law_firm",
             Rel.COLLECTION_AGENCY: "collection_agency"}  # fmt: skip
    out: list[str] = []
    for rel, role in roles.items():
        if rule.of(rel) is not NO and role not in out:
            out.append(role)
    return out


def _role_refusal(caller: Any, rule: Rule) -> PermissionDeniedError | None:
    roles = _roles_allowed(rule)
    if caller.role in roles:
        return None
    wanted = " or ".join(f"{r}s" for r in roles)
    return PermissionDeniedError(
        f"Only {wanted} can {rule.what}; {caller.name} is registered as {caller.role}.",
        hint="Use a token of a participant with that role.",
    )


def require_role(caller: Any, action: str) -> None:
    """Refuse (403) a caller whose role the policy never grants `action`, before looking for the resource:
    a refusal by role says nothing about whether the resource exists."""
    refusal = _role_refusal(caller, POLICY[action])
    if refusal is not None:
        raise refusal


def require(
    caller: Any, action: str, loan: Any | None = None, *, label: str = "", subject: str = "verification"
) -> Grant:
    """The caller's grant for `action` (on `loan`), or PermissionDeniedError saying who may instead.
    `label` names the loan in messages (its number or id as the caller gave it); `subject` names what
    covers the whole trail (verification, proof bundle, audit report, export)."""
    rule = POLICY[action]
    given = grant(caller, action, loan)
    if given is not NO:
        return given
    refusal = _role_refusal(caller, rule)
    if refusal is not None:
        raise refusal
    name = label or (loan.loan_id if loan is not None else "")
    if rule.refusal == "whole_trail":
        raise PermissionDeniedError(
            f"The {subject} covers the whole trail "
            f"of loan {name}; {caller.name} sees only the lots it holds or paid out of.",
            hint="Ask the loan's lender, its borrower or an auditor; "
            "GET /v1/loans/{loan}/trail shows your part.",
        )
    if rule.refusal == "risk_file":
        raise PermissionDeniedError(
            f"Only the loan's lender, its borrower and auditors can {rule.what} of loan {name}; "
            f"{caller.name} takes part in its trail only.",
            hint="The terms, repayments, risk class, collateral and attestations are the borrower's risk "
            "file; GET /v1/loans/{loan}/trail shows your part.",
        )
    raise PermissionDeniedError(
        f"This loan is serviced by another bank; {caller.name} cannot {rule.what} on it.",
        hint="Only the bank that granted a loan services it.",
    )


# ------------------------------------------------------------------------------------ supply-chain vouchers
# A voucher (issue 22) is the core enterprise's acknowledged payable (确权), split and passed down its supply
# chain, financed at banks and settled at maturity. Callers stand to a voucher in relationships of their own.


class VRel(StrEnum):
    """How a caller stands to a voucher, first match wins in this order."""

    CORE = "core enterprise (issuer)"
    LINE_BANK = "bank of the credit line"
    FINANCING_BANK = "financing bank"
    HOLDER = "holder of a part"
    OTHER_LENDER = "another lender"
    ENTERPRISE = "unrelated enterprise"
    AUDITOR = "auditor"
    ANONYMOUS = "no token"


@dataclass(frozen=True)
class VoucherFacts:
    """What the policy needs to know of one voucher: its core enterprise's organisation, the bank that
    granted the core's credit line, the banks asked to finance (or that financed) a part, and every
    organisation that holds or held a part in its tree."""

    voucher_id: str
    core_org: str
    line_bank_org: str | None = None
    financing_bank_orgs: frozenset[str] = frozenset()
    holder_orgs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VoucherRule:
    what: str
    scope: Literal["voucher", "caller"]
    grants: dict[VRel, Grant] = field(default_factory=dict)
    note: str = ""
    whole_tree: bool = False  # the action covers every branch (a holder sees only its own)

    def of(self, rel: VRel) -> Grant:
        return self.grants.get(rel, NO)


def _vrule(
    what: str,
    scope: Literal["voucher", "caller"] = "voucher",
    *,
    note: str = "",
    whole_tree: bool = False,
    core: Grant = NO,
    line_bank: Grant = NO,
    financing_bank: Grant = NO,
    holder: Grant = NO,
    other_lender: Grant = NO,
    enterprise: Grant = NO,
    auditor: Grant = NO,
) -> VoucherRule:
    grants = {VRel.CORE: core, VRel.LINE_BANK: line_bank, VRel.FINANCING_BANK: financing_bank,
              VRel.HOLDER: holder, VRel.OTHER_LENDER: other_lender, VRel.ENTERPRISE: enterprise,
              VRel.AUDITOR: auditor, VRel.ANONYMOUS: NO}  # fmt: skip
    return VoucherRule(what, scope, grants, note, whole_tree)


def _v_lenders(g: Grant) -> dict[str, Any]:
    return {"line_bank": g, "financing_bank": g, "other_lender": g}


def _v_enterprises(g: Grant) -> dict[str, Any]:
    return {"core": g, "holder": g, "enterprise": g}


VOUCHER_POLICY: dict[str, VoucherRule] = {
    # -- no voucher in particular: answered by role (a lender is every bank relationship alike, an
    # enterprise the core, a holder and an unrelated enterprise alike)
    "vouchers.list": _vrule("list vouchers", "caller", **_v_lenders(OWN), **_v_enterprises(OWN), auditor=YES,
                            note="own: a core enterprise its payables by due date against its line; a "
                            "supplier the parts it holds; a bank its financing book and its exposure per "
                            "core enterprise"),
    "vouchers.credit_line": _vrule("set a core enterprise's credit line (授信额度)", "caller",
                                   **_v_lenders(YES),
                                   note="one line per core enterprise; the contract remembers the bank"),
    "vouchers.issue": _vrule("issue vouchers (确权)", "caller", **_v_enterprises(OWN),
                             note="own: an account of a core enterprise with a credit line (the contract "
                             "checks the line and its limit)"),
    "vouchers.book": _vrule("see the financing book", "caller", **_v_lenders(OWN), auditor=YES,
                            note="own: the parts the bank financed or was asked to finance"),
    "vouchers.exposure": _vrule("see the exposure per core enterprise", "caller", **_v_lenders(OWN),
                                auditor=YES,
                                note="own: the lines the bank granted and the parts it financed"),
    # -- one voucher: what is seen
    "voucher.read": _vrule("see the voucher's tree", core=YES, line_bank=YES, financing_bank=OWN,
                           holder=OWN, auditor=YES,
                           note="own: the branch of the parts the caller holds, held or was asked to "
                           "finance (those parts and the parts above them up to the issue), as a supplier "
                           "sees its own lots; other branches' holders are left out"),
    "voucher.verification": _vrule("verify the whole voucher and get its proof bundle", core=YES,
                                   line_bank=YES, auditor=YES, whole_tree=True,
                                   note="every branch: a holder sees its own (GET /v1/vouchers/{voucher})"),
    # -- one voucher: what is done
    "voucher.split": _vrule("split and transfer parts", holder=OWN,
                            note="own: a part the caller holds now (the contract checks)"),
    "voucher.request_financing": _vrule("ask a bank to finance parts", holder=OWN,
                                        note="own: a part the caller holds now (the contract checks)"),
    "voucher.accept_financing": _vrule("accept financing of parts (贴现)", line_bank=OWN, financing_bank=OWN,
                                       note="own: a part the caller's bank was asked to finance (the "
                                       "contract checks)"),
    "voucher.settle": _vrule("settle parts at maturity (到期兑付)", core=YES,
                             note="the core enterprise pays whoever holds the part, at or after maturity"),
}  # fmt: skip

_V_ROLE = {"lender": VRel.OTHER_LENDER, "enterprise": VRel.ENTERPRISE, "auditor": VRel.AUDITOR}


def voucher_rel(caller: Any | None, facts: VoucherFacts | None) -> VRel:
    """How `caller` stands to the voucher `facts` describe (None: no voucher in particular, or not mirrored).
    Third parties (appraisers, law firms, collection agencies) stand to every voucher as unrelated."""
    if caller is None:
        return VRel.ANONYMOUS
    by_role = _V_ROLE.get(caller.role, VRel.ENTERPRISE)
    if facts is None or by_role is VRel.AUDITOR:
        return by_role
    org = caller.org_id
    if caller.role == "lender":
        if org == facts.line_bank_org:
            return VRel.LINE_BANK
        return VRel.FINANCING_BANK if org in facts.financing_bank_orgs else VRel.OTHER_LENDER
    if caller.role != "enterprise":
        return VRel.ENTERPRISE
    if org == facts.core_org:
        return VRel.CORE
    return VRel.HOLDER if org in facts.holder_orgs else VRel.ENTERPRISE


def voucher_grant(caller: Any | None, action: str, facts: VoucherFacts | None = None) -> Grant:
    rule = VOUCHER_POLICY[action]
    if rule.scope == "caller":
        facts = None
    return rule.of(voucher_rel(caller, facts))


_V_ROLES = {VRel.CORE: "enterprise", VRel.HOLDER: "enterprise", VRel.ENTERPRISE: "enterprise",
            VRel.LINE_BANK: "lender", VRel.FINANCING_BANK: "lender", VRel.OTHER_LENDER: "lender",
            VRel.AUDITOR: "auditor"}  # fmt: skip
_V_WHO = {VRel.CORE: "the voucher's core enterprise", VRel.LINE_BANK: "the bank of its credit line",
          VRel.FINANCING_BANK: "a bank asked to finance a part", VRel.HOLDER: "a holder of a part",
          VRel.AUDITOR: "auditors"}  # fmt: skip


def require_voucher(caller: Any, action: str, facts: VoucherFacts | None = None) -> Grant:
    """The caller's grant for `action` (on the voucher `facts` describe), or PermissionDeniedError saying
    who may instead. With `facts` None on a voucher action only the role is checked (before the lookup)."""
    rule = VOUCHER_POLICY[action]
    roles = [r for rel, r in _V_ROLES.items() if rule.of(rel) is not NO]
    if caller.role not in roles:
        wanted = " or ".join(f"{r}s" for r in dict.fromkeys(roles))
        raise PermissionDeniedError(
            f"Only {wanted} can {rule.what}; {caller.name} is registered as {caller.role}.",
            hint="Use a token of a participant with that role.",
        )
    if rule.scope == "voucher" and facts is None:
        return OWN
    given = voucher_grant(caller, action, facts)
    if given is not NO:
        return given
    assert facts is not None  # a caller-scope action is answered by role above
    who = [_V_WHO[rel] for rel in _V_WHO if rule.of(rel) is not NO]
    if rule.whole_tree:
        raise PermissionDeniedError(
            f"Verifying voucher {facts.voucher_id} covers every branch of its tree; {caller.name} sees only "
            "the branch of the parts it holds, held or was asked to finance.",
            hint="Ask the core enterprise, the bank of its credit line or an auditor; "
            "GET /v1/vouchers/{voucher} shows your branch.",
        )
    raise PermissionDeniedError(
        f"Only {' or '.join(who)} can {rule.what} of voucher {facts.voucher_id}; {caller.name} stands to it "
        f"as {voucher_rel(caller, facts).value}.",
        hint="Use a token of the participant named; GET /v1/vouchers lists what you hold.",
    )


_GRANT_TEXT = {YES: "yes", OWN: "own", NO: "–"}


def policy_markdown() -> str:
    """docs/access-policy.md, generated from POLICY and ROUTES (a test keeps the file equal to this)."""
    rels = list(Rel)
    lines = [
        "# Access policy",
        "",
        "Generated from `api/policy.py` (`POLICY`, `ROUTES`):",
        "`python -m api.policy > docs/access-policy.md`. tests/test_access_policy.py fails when this file",
        "and the code differ, and walks every route and dashboard page for every relationship below.",
        "",
        "**yes**: allowed. **own**: only the caller's part (see the note). **–**: refused: 401 without a",
        "token, 404 for a loan the caller does not see at all, else 403 saying who may.",
        "",
        "Actions on no loan in particular are answered by role: a lender counts as lender of the loan and",
        "another lender alike, an enterprise as borrower, supplier and unrelated enterprise alike.",
        "A supplier is an enterprise that holds lots of the loan's trail (or paid out of them) but did not",
        "borrow it: it sees its part of the trail, not the borrower's risk file (terms and schedule,",
        "counterparties, approval threshold, risk class, repayments, collateral values, attestations).",
        "",
        "| action | " + " | ".join(r.value for r in rels) + " | note |",
        "|---|" + "---|" * len(rels) + "---|",
    ]
    for name, rule in POLICY.items():
        cells = " | ".join(_GRANT_TEXT[rule.of(r)] for r in rels)
        lines.append(f"| `{name}`: {rule.what} | {cells} | {rule.note} |")
    lines += ["", "## Routes and pages", "", "| route or page | action |", "|---|---|"]
    lines += [f"| `{route}` | `{action}` |" for route, action in ROUTES.items()]
    lines += ["", "## Loan page sections", "", "| section | action |", "|---|---|"]
    lines += [f"| `#{section}` | `{action}` |" for section, action in LOAN_PAGE_SECTIONS.items()]
    vrels = [r for r in VRel]
    lines += [
        "",
        "## Supply-chain vouchers",
        "",
        "A caller stands to a voucher as the first that fits: its core enterprise (the issuer), the bank",
        "that granted the core's credit line, a bank asked to finance (or that financed) a part, an",
        "enterprise that holds or held a part of its tree, another lender, an unrelated enterprise, an",
        "auditor. Third parties stand to every voucher as unrelated enterprises. A holder sees its own",
        "branch (the parts it holds or held and those above them up to the issue), as a supplier sees its",
        "own lots; the whole tree's verification and bundle are the core's, the line bank's and auditors'.",
        "",
        "| action | " + " | ".join(r.value for r in vrels) + " | note |",
        "|---|" + "---|" * len(vrels) + "---|",
    ]
    for name, vrule in VOUCHER_POLICY.items():
        cells = " | ".join(_GRANT_TEXT[vrule.of(r)] for r in vrels)
        lines.append(f"| `{name}`: {vrule.what} | {cells} | {vrule.note} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(policy_markdown(), end="")
