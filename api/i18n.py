"""Dashboard labels in English and Chinese. Domain terms show in the chosen language with the other one
beside them (bankers here read both); the rest of the interface follows the chosen language."""

from __future__ import annotations

from markupsafe import Markup

from ledger.monitoring.vouchers import VOUCHER_RULE_LABELS
from ledger.protocol.codes import LoanStatus, RiskClass

__all__ = [
    "ALERT_STATE_LABELS",
    "LANGS",
    "RISK_CLASSES",
    "RULE_LABELS",
    "SEVERITY_LABELS",
    "STATUSES",
    "Translator",
    "translator",
]

LANGS = ("en", "zh")

# key -> (English, Chinese). Keys starting with "term_" are domain terms, shown bilingually.
_LABELS: dict[str, tuple[str, str]] = {
    "app": ("Fundflow", "资金流向账本"),
    "term_disbursement": ("Disbursement", "放款"),
    "term_entrusted": ("Entrusted payment", "受托支付"),
    "term_payment": ("Payment", "支付"),
    "term_confirmation": ("Confirmation of receipt", "收款确认"),
    # issue 22: 确权 is the core enterprise acknowledging its payable (a voucher), never a payee's receipt
    "term_acknowledgement": ("Acknowledgement of the payable (voucher issued)", "确权"),
    "term_voucher": ("Payable voucher", "电子债权凭证"),
    "term_core_enterprise": ("Core enterprise", "核心企业"),
    "term_credit_line": ("Credit line", "授信额度"),
    "term_discount": ("Discount financing", "贴现融资"),
    "term_settlement": ("Settlement at maturity", "到期兑付"),
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
    # ---- behaviour score (issue 21)
    "term_behaviour_score": ("Behaviour score", "行为评分"),
    "term_score_band": ("Score band", "评分等级"),
    "term_pd": ("Probability of default (12 months)", "违约概率（12个月）"),
    "score_reasons": ("Reasons (worst first)", "主要原因（影响最大者在前）"),
    "score_no_reasons": (
        "No feature costs points: every feature is in its best bin.",
        "各项指标均处于最佳区间。",
    ),
    "score_as_of": ("scored as of", "评分时点"),
    "model_card": ("Model card", "模型说明"),
    "scores_by_band": ("Portfolio by behaviour-score band", "按行为评分等级的资产组合"),
    "scores_nav": ("Scores", "行为评分"),
    "observed_bad_rate": ("Observed bad rate (out of time)", "实际坏账率（跨时间验证）"),
    "not_scored": ("No scores yet: run `fundflow score apply`.", "尚无评分：请运行 `fundflow score apply`。"),
    # ---- loan servicing (issue 18)
    "term_servicing": ("Servicing and classification floor", "贷后还款与分类下限"),
    "term_days_past_due": ("Days past due", "逾期天数"),
    "term_debtor_days_past_due": ("Debtor's days past due", "债务人逾期天数"),
    "term_floor": ("Floor (the rules)", "分类下限（监管规则）"),
    "term_suggested": ("Suggested class", "建议分类"),
    "term_observation": ("Observation period", "重组观察期"),
    "term_interest": ("Interest", "利息"),
    "term_penalty": ("Penalty interest", "罚息"),
    "past_due_since": ("since", "起始日"),
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
    "received": ("Payments received", "收款确认"),
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
    "confirmed": ("confirmed", "已确认收款"),
    "unconfirmed": ("awaiting confirmation", "待确认收款"),
    "disputed": ("disputed", "有异议"),
    "outside_use": ("outside declared use", "超出约定用途"),
    "alert": ("alert", "预警"),
    "confirm": ("Confirm receipt", "确认收款"),
    "dispute": ("Dispute", "提出异议"),
    "dispute_reason": ("Reason for the dispute", "异议理由"),
    "waiting": ("Waiting for your confirmation", "待您确认收款"),
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
    # --- issue 20: dates, downloads, portfolio, evidence ---
    "date": ("Date", "日期"),
    "opened": ("Opened", "放款日期"),
    "times_in": ("Times are block times in", "时间为区块时间，时区"),
    "downloads": ("Downloads", "下载"),
    "dl_report": ("Audit report (HTML)", "审计报告（HTML）"),
    "dl_csv": ("Trail (CSV)", "资金流向（CSV）"),
    "dl_xlsx": ("Trail (Excel)", "资金流向（Excel）"),
    "dl_voucher_xlsx": ("Voucher trail (Excel)", "凭证流转（Excel）"),
    "dl_voucher_csv": ("Voucher trail (CSV)", "凭证流转（CSV）"),
    "dl_voucher_json": ("Voucher trail (JSON)", "凭证流转（JSON）"),
    "dl_bundle": ("Proof bundle (JSON)", "证明包（JSON）"),
    "portfolio": ("Portfolio", "资产组合"),
    "evidence_file": ("Evidence file (optional)", "凭证文件（可选）"),
    "confirm_note": ("Note (optional)", "备注（可选）"),
    "paid_out_of": ("Paid out of", "资金来源批次"),
    "rule_any": ("any rule", "全部规则"),
    "as_of": ("As of block time", "截至区块时间"),
    "loans_open": ("Open loans", "存续贷款"),
    "non_performing": ("Non-performing (substandard or worse)", "不良（次级及以下）"),
    "by_class": ("Outstanding by risk class", "按五级分类的贷款余额"),
    "by_type": ("Outstanding by loan type", "按贷款类型的贷款余额"),
    "type_not_stated": ("not stated in the terms", "条款未注明"),
    "overdue_buckets": ("Loans past maturity, by days", "逾期贷款（按逾期天数）"),
    "overdue_note": (
        "Days past the maturity date on the chain's clock; days past due of instalments are on each loan.",
        "按链上时间计算的超过到期日天数；分期还款逾期天数见各笔贷款。",
    ),
    "top_exposures": ("Largest exposures by borrower", "借款人敞口前十"),
    "alerts_by_rule": ("Alerts by rule and severity", "按规则与严重程度的预警"),
    "alerts_by_month": ("Alerts raised per month", "每月新增预警"),
    "count": ("Count", "笔数"),
    "days": ("Days", "天数"),
    "more_payments": ("more payments,", "笔其他支付，合计"),
    "page": ("Page", "页"),
    "of": ("of", "/"),
    "previous": ("Previous", "上一页"),
    "next": ("Next", "下一页"),
    "since": ("From", "起始日期"),
    "until": ("To", "截止日期"),
    # -- the post-loan file (issue 19)
    "term_visits": ("Visits and interviews", "贷后走访与访谈"),
    "term_site_visit_due": ("Next site visit due", "下次实地走访"),
    "visit_kind": ("Kind", "方式"),
    "visit_date": ("Visit date", "走访日期"),
    "recorded_on": ("Recorded on chain", "上链日期"),
    "place": ("Place", "地点"),
    "attendees": ("Attendees (one per line)", "参与人员（每行一人）"),
    "findings": ("Findings", "检查发现"),
    "follow_up": ("Follow-up action", "后续措施"),
    "follow_up_owner": ("Owner", "负责人"),
    "follow_up_due": ("Due", "截止日期"),
    "record_visit": ("Record visit", "记录走访"),
    "overdue_by": ("overdue by", "已逾期"),
    "every": ("every", "每"),
    "days_unit": ("day(s)", "天"),
    "report_verified": ("report matches its on-chain hash", "报告与链上哈希一致"),
    "report_problem": ("report not shown", "报告不可用"),
    "term_guarantees": ("Guarantees", "担保"),
    "term_guarantee_circle": ("Guarantee circle: each arrow is a guarantee", "互保/联保圈：箭头表示担保关系"),
    "guarantor": ("Guarantor", "担保人"),
    "expiry": ("Expiry", "到期日"),
    "released": ("released", "已解除"),
    "term_write_off": ("Write-off", "核销"),
    "term_preservation": ("Asset preservation", "财产保全"),
    "open_deadline": ("not met", "未完成"),
    "term_recovered": ("Recovered since write-off", "核销后累计清收"),
    "write_off": ("Write off", "核销"),
    "write_off_reason": ("Reason for the write-off", "核销理由"),
    "received_on": ("Received on", "收回日期"),
    "source": ("Source", "来源"),
    # -- the collateral register and third parties (issue 19, second half)
    "term_collateral_register": ("Collateral register", "押品登记簿"),
    "term_effective_cover": ("Effective cover after haircuts", "扣除折扣后的有效覆盖率"),
    "term_engagements": ("Engaged third parties", "受托第三方"),
    "item_ref": ("Item", "押品"),
    "registration_number": ("Registration no.", "登记证明号"),
    "haircut": ("Haircut", "折扣率"),
    "latest_value": ("Latest value", "最新估值"),
    "effective_value": ("Effective value", "有效价值"),
    "appraised_by": ("appraised by", "评估机构"),
    "lender_estimate": ("the lender's own estimate", "贷款行自行估值"),
    "collateral_status_registered": ("registered", "已登记"),
    "collateral_status_seized": ("seized", "已查封"),
    "collateral_status_released": ("released", "已解押"),
    "role_appraiser": ("appraiser", "评估机构"),
    "role_law_firm": ("law firm", "律师事务所"),
    "role_collection_agency": ("collection agency", "催收机构"),
    "valued_on": ("Valued on", "评估基准日"),
    "method": ("Method", "评估方法"),
    "sign_valuation": ("Sign the valuation", "签署评估"),
    # supply-chain vouchers (issue 22)
    "vouchers": ("Vouchers", "电子债权凭证"),
    "payables": ("Payables by due date", "应付账款（按到期日）"),
    "parts_held": ("Parts you hold", "您持有的凭证"),
    "financing_book": ("Financing book", "融资台账"),
    "exposure": ("Exposure per core enterprise", "核心企业敞口"),
    "due_date": ("Due date", "到期日"),
    "face_value": ("Face value", "票面金额"),
    "outstanding_amount": ("Outstanding", "未兑付"),
    "line_used": ("Used", "已用"),
    "line_available": ("Available", "可用"),
    "line_limit": ("Line", "额度"),
    "holders": ("Holders", "持有方"),
    "bank": ("Bank", "银行"),
    "rate_bps": ("Discount rate (bps a year)", "年贴现率（基点）"),
    "interest": ("Discount interest", "贴现利息"),
    "paid_out": ("Paid", "实付金额"),
    "financed": ("Financed", "已融资"),
    "part": ("Part", "凭证拆分"),
    "core": ("Core enterprise", "核心企业"),
    "requester": ("Asked by", "申请方"),
    "ask_financing": ("Ask for financing", "申请融资"),
    "accept_financing": ("Accept financing", "同意融资"),
    "settle_part": ("Settle at maturity", "到期兑付"),
    "voucher_tree": ("The voucher's tree", "凭证流转图"),
    "invoice": ("Invoice hash", "发票哈希"),
    "your_branch": ("You see your own branch of this voucher.", "您只能看到与您相关的凭证分支。"),
    "issued": ("Issued (确权)", "确权签发"),
}

# --- issue 20: alerts in both languages (rule, severity, state) ---
RULE_LABELS: dict[str, tuple[str, str]] = {
    **VOUCHER_RULE_LABELS,  # supply-chain vouchers (issue 22): ledger.monitoring.vouchers
    "undeclared_use": ("Use outside the declared purposes", "资金用途超出约定"),
    "prohibited_use": ("Prohibited use of loan funds", "贷款资金违规用途"),
    "circular_flow": ("Money flowed back", "资金回流"),
    "rapid_pass_through": ("Rapid pass-through", "资金快进快出"),
    "structuring": ("Payments split under the threshold", "化整为零规避受托支付"),
    "concentration": ("Concentration on one payee", "资金集中流向单一收款方"),
    "unconfirmed_payment": ("Payment not confirmed", "收款未确认"),
    "disputed_payment": ("Payment disputed", "收款有异议"),
    "late_repayment": ("Repayment past due", "还款逾期"),
    "past_maturity": ("Past maturity", "贷款逾期未还"),
    "collateral_cover": ("Collateral cover too low", "押品覆盖不足"),
    "collateral_stale": ("Collateral valuation stale", "押品估值过期"),
    "missed_inspection": ("Inspection overdue", "贷后检查逾期"),
    "missed_site_visit": ("Site visit overdue", "实地走访逾期"),
    "guarantee_expiry": ("Guarantee expires before the loan matures", "担保先于贷款到期"),
    "guarantor_overdue": ("Guarantor itself overdue", "担保人自身逾期"),
    "guarantor_over_capacity": ("Guarantor above its capacity", "担保人担保超出能力"),
    "guarantee_cycle": ("Mutual or circular guarantee", "互保/联保"),
    "preservation_deadline": ("Asset-preservation deadline", "财产保全期限"),
    "late_interest": ("Interest past due", "利息逾期"),
    "entrusted_payment_required": ("Should have been entrusted payment", "应受托支付而自主支付"),
    "self_paid_report_overdue": ("Self-paid use not reported", "自主支付用途未报告"),
    "score_band_worse": ("Behaviour score fell to a worse band", "行为评分等级下调"),  # issue 21
}
SEVERITY_LABELS: dict[str, tuple[str, str]] = {
    "info": ("info", "提示"),
    "low": ("low", "低"),
    "medium": ("medium", "中"),
    "high": ("high", "高"),
    "critical": ("critical", "严重"),
}
ALERT_STATE_LABELS: dict[str, tuple[str, str]] = {
    "open": ("open", "未处理"),
    "acknowledged": ("acknowledged", "已知悉"),
    "resolved": ("resolved", "已解决"),
    "unresolved": ("unresolved", "未解决"),
    "all": ("all", "全部"),
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
