"""Every monitoring rule has its banker's name in English and Chinese: alerts, filters and the portfolio page
show these labels, and a rule without one would show its code name on the Chinese page."""

from api.i18n import RULE_LABELS
from ledger.monitoring.rules import RULES as LOAN_RULES
from ledger.monitoring.vouchers import VOUCHER_RULES

RULES = set(LOAN_RULES) | VOUCHER_RULES  # the loans' rules and the vouchers' (issue 22)


def test_every_rule_has_an_english_and_a_chinese_label() -> None:
    missing = sorted(set(RULES) - set(RULE_LABELS))
    assert not missing, f"add these rules to api.i18n.RULE_LABELS: {missing}"
    for rule, (en, zh) in RULE_LABELS.items():
        assert en and zh and en != zh, rule


def test_no_label_for_a_rule_that_does_not_exist() -> None:
    assert not sorted(set(RULE_LABELS) - set(RULES))
