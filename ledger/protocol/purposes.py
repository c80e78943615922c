"""Purpose codes: what a payment says the money is for (资金用途).

A code is a uint8 in 0-31 on chain; a loan allows a subset of them. The last four are the uses banks
commonly prohibit for working-capital loans (real estate, securities, onward lending, repaying other debt);
monitoring treats a payment with one of those codes as a prohibited use even where a loan allowed it.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PROHIBITED", "Purpose", "describe"]


class Purpose(IntEnum):
    RAW_MATERIALS = 1  # 原材料采购
    GOODS = 2  # 商品采购
    EQUIPMENT = 3  # 设备购置
    WAGES = 4  # 工资薪酬
    RENT_UTILITIES = 5  # 租金水电
    TAXES = 6  # 税费
    LOGISTICS = 7  # 物流运输
    CONSTRUCTION = 8  # 工程建设
    SERVICES = 9  # 技术与服务
    ENERGY = 10  # 能源
    WORKING_CAPITAL = 11  # 日常经营周转
    REAL_ESTATE = 28  # 房地产 (prohibited)
    SECURITIES = 29  # 证券投资 (prohibited)
    ONWARD_LENDING = 30  # 转贷/委托贷款 (prohibited)
    DEBT_REPAYMENT = 31  # 偿还他行借款 (prohibited)


PROHIBITED = frozenset(
    {Purpose.REAL_ESTATE, Purpose.SECURITIES, Purpose.ONWARD_LENDING, Purpose.DEBT_REPAYMENT}
)

_LABELS = {
    Purpose.RAW_MATERIALS: ("raw materials", "原材料采购"),
    Purpose.GOODS: ("goods", "商品采购"),
    Purpose.EQUIPMENT: ("equipment", "设备购置"),
    Purpose.WAGES: ("wages", "工资薪酬"),
    Purpose.RENT_UTILITIES: ("rent and utilities", "租金水电"),
    Purpose.TAXES: ("taxes", "税费"),
    Purpose.LOGISTICS: ("logistics", "物流运输"),
    Purpose.CONSTRUCTION: ("construction", "工程建设"),
    Purpose.SERVICES: ("services", "技术与服务"),
    Purpose.ENERGY: ("energy", "能源"),
    Purpose.WORKING_CAPITAL: ("working capital", "日常经营周转"),
    Purpose.REAL_ESTATE: ("real estate", "房地产"),
    Purpose.SECURITIES: ("securities", "证券投资"),
    Purpose.ONWARD_LENDING: ("onward lending", "转贷"),
    Purpose.DEBT_REPAYMENT: ("repaying other debt", "偿还他行借款"),
}


def describe(code: int, lang: str = "en") -> str:
    """A label for a purpose code; unknown codes (valid on chain, unnamed here) show as their number."""
    try:
        en, zh = _LABELS[Purpose(code)]
    except ValueError:
        return f"purpose {code}"
    return zh if lang == "zh" else en
