"""Dashboard labels in English and Chinese. Domain terms show in the chosen language with the other one
beside them (bankers here read both); the rest of the interface follows the chosen language."""

from __future__ import annotations

from markupsafe import Markup

from ledger.protocol.codes import LoanStatus, RiskClass

__all__ = ["LANGS", "RISK_CLASSES", "STATUSES", "Translator", "translator"]

LANGS = ("en", "zh")

# key -> (English, Chinese). Keys starting with "term_" are domain terms, shown bilingually.
_LABELS: dict[str, tuple[str, str]] = {
    "app": ("Fundflow", "资金流向账本"),
    "term_disbursement": ("Disbursement", "放款"),
    "term_entrusted": ("Entrusted payment", "受托支付"),
    "term_payment": ("Payment", "支付"),
    "term_confirmation": ("Confirmation", "确权"),
    "term_risk_class": ("Risk class", "五级分类"),
    "term_purpose": ("Purpose", "资金用途"),
    "term_declared_use": ("Declared use", "约定用途"),
    "term_outside_use": ("Outside declared use", "超出约定用途"),
    "term_repayment": ("Repayment", "还款"),
    "term_collateral": ("Collateral", "押品"),
    "term_attestation": ("Attestation", "审计鉴证"),
    "term_principal": ("Principal", "本金"),
    "term_disbursed": ("Disbursed", "已放款"),
    "term_repaid": ("Repaid", "已还款"),
    "term_outstanding": ("Outstanding", "贷款余额"),
    "term_borrower": ("Borrower", "借款人"),
    "term_loan": ("Loan", "贷款"),
    "term_lot": ("Lot", "资金批次"),
    "term_alert": ("Alert", "预警"),
    "term_classification": ("Classification history", "分类历史"),
    "term_verification": ("Verification", "链上核验"),
    "term_evidence": ("Evidence documents", "凭证文件"),
    # ---- loan servicing (issue 18)
    "term_servicing": ("Servicing and classification floor", "贷后还款与分类下限"),
    "term_days_past_due": ("Days past due", "逾期天数"),
    "term_debtor_days_past_due": ("Debtor's days past due", "债务人逾期天数"),
    "term_floor": ("Floor (the rules)", "分类下限（监管规则）"),
    "term_suggested": ("Suggested class", "建议分类"),
    "term_observation": ("Observation period", "重组观察期"),
    "term_interest": ("Interest", "利息"),
    "term_penalty": ("Penalty interest", "罚息"),
    "since": ("since", "起始日"),
    "criterion": ("Criterion", "依据"),
    "floor_rule": ("rule", "监管规则"),
    "bank_policy": ("bank policy", "本行政策"),
    "not_checked": ("Not checked", "未核查"),
    "restarted": ("restarted", "重新起算"),
    "ended": ("ended", "已结束"),
    "migration": ("Migration", "迁徙率"),
    "term_migration": ("Migration between classes", "五级分类迁徙"),
    "period_start": ("From", "期初"),
    "period_end": ("To", "期末"),
    "start_class": ("Class at the start", "期初分类"),
    "loans_count": ("Loans", "笔数"),
    "balance_at_start": ("Balance at the start", "期初余额"),
    "download_csv": ("Download CSV", "下载 CSV"),
    "loans": ("Loans", "贷款列表"),
    "alerts": ("Alerts", "预警"),
    "received": ("Payments received", "收款确权"),
    "sign_in": ("Sign in", "登录"),
    "sign_out": ("Sign out", "退出"),
    "token": ("API token", "API 令牌"),
    "token_help": (
        "Paste the API token the operator gave you (fundflow tokens create NAME).",
        "请粘贴运营方发放的 API 令牌（fundflow tokens create NAME）。",
    ),
    "search": ("Search", "搜索"),
    "search_hint": ("loan number, borrower or id", "贷款编号、借款人或 ID"),
    "status": ("Status", "状态"),
    "any": ("any", "全部"),
    "with_alerts": ("with open alerts only", "仅显示有未处理预警"),
    "filter": ("Filter", "筛选"),
    "open_alerts": ("Open alerts", "未处理预警"),
    "no_loans": ("No loans match.", "没有符合条件的贷款。"),
    "maturity": ("Maturity", "到期日"),
    "lender": ("Lender", "贷款行"),
    "holder": ("Holder", "持有方"),
    "payer": ("Paid by", "付款方"),
    "amount": ("Amount", "金额"),
    "remaining": ("Remaining", "余额"),
    "block": ("Block", "区块"),
    "transaction": ("Transaction", "交易"),
    "lot_id": ("Lot id", "批次 ID"),
    "flow_title": ("Where the money went", "资金流向"),
    "flow_help": (
        "Each box is one lot; band widths are proportional to amounts. Click a lot for its details.",
        "每个方框是一笔资金批次，连线宽度与金额成比例。点击批次查看详情。",
    ),
    "verified_at": ("Verified against the chain at block", "已与链上数据核验，区块高度"),
    "verify_failed": ("Verification FAILED", "核验失败"),
    "verify_unavailable": ("Verification unavailable", "暂时无法核验"),
    "trail_grew": (
        "The loan changed on chain since; the mirror is catching up.",
        "此后链上贷款已有新记录，镜像正在同步。",
    ),
    "confirmed": ("confirmed", "已确权"),
    "unconfirmed": ("awaiting confirmation", "待确权"),
    "disputed": ("disputed", "有异议"),
    "outside_use": ("outside declared use", "超出约定用途"),
    "alert": ("alert", "预警"),
    "confirm": ("Confirm receipt", "确认收款"),
    "dispute": ("Dispute", "提出异议"),
    "dispute_reason": ("Reason for the dispute", "异议理由"),
    "waiting": ("Waiting for your confirmation", "待您确权"),
    "done": ("Already answered", "已处理"),
    "nothing": ("Nothing here.", "暂无记录。"),
    "acknowledge": ("Acknowledge", "确认知悉"),
    "resolve": ("Resolve", "处理完毕"),
    "resolution_note": ("What was done", "处理说明"),
    "severity": ("Severity", "级别"),
    "rule": ("Rule", "规则"),
    "state": ("State", "状态"),
    "raised": ("Raised", "发生时间"),
    "details": ("Details", "详情"),
    "select_lot": ("Select a lot in the picture to see its details.", "在图中选择一笔批次查看详情。"),
    "none": ("none", "无"),
    "head": ("Hash-chain head", "哈希链头"),
    "value": ("Value", "估值"),
    "auditor": ("Auditor", "审计方"),
    "report": ("Report hash", "报告哈希"),
    "collateral_id": ("Collateral id", "押品编号"),
    "reason": ("Reason hash", "理由哈希"),
    "partial": (
        "You see only the lots your organisation holds or paid out.",
        "您只能看到本机构持有或支付的批次。",
    ),
    "print": ("Print", "打印"),
    "signed_in_as": ("Signed in as", "当前用户"),
    "loan_of": ("Loan", "贷款"),
    "file": ("File", "文件"),
    "not_stored": ("hash only (document not stored here)", "仅有哈希（文件未存储于此）"),
    "sub_lots": ("Paid onward", "向下支付"),
    "lots_table": ("All lots", "全部批次"),
    "role": ("Role", "角色"),
    "kind": ("Kind", "类型"),
}

# code -> (English, Chinese), from the protocol's enums. A loan is never shown with status NONE (no loan).
STATUSES = {int(s): (s.en, s.zh) for s in LoanStatus if s is not LoanStatus.NONE}
RISK_CLASSES = {int(c): (c.en, c.zh) for c in RiskClass}


class Translator:
    """`t(key)` in the chosen language; `term(key)` a domain term with its translation beside it."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else "en"
        self._i = 1 if self.lang == "zh" else 0

    def __call__(self, key: str) -> str:
        pair = _LABELS.get(key) or _LABELS.get("term_" + key)
        return pair[self._i] if pair else key

    def term(self, key: str) -> Markup:
        en, zh = _LABELS["term_" + key]
        main, other = (zh, en) if self.lang == "zh" else (en, zh)
        return Markup('{} <span class="alt" lang="{}">{}</span>').format(
            main, "en" if self.lang == "zh" else "zh", other
        )

    def pair(self, table: dict[int, tuple[str, str]], code: int) -> Markup:
        en, zh = table.get(code, (str(code), str(code)))
        main, other = (zh, en) if self.lang == "zh" else (en, zh)
        return Markup('{} <span class="alt">{}</span>').format(main, other)

    def flat(self) -> dict[str, str]:
        return {k.removeprefix("term_"): v[self._i] for k, v in _LABELS.items()}


def translator(lang: str | None) -> Translator:
    return Translator(lang or "en")
