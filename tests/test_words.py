"""Words matter (DOMAIN.md): 确权 is a core enterprise (the debtor) confirming that it owes a payable, i.e.
issuing a voucher; a payee acknowledging money it received is 收款确认. This walks every text the product
shows or documents and fails on 确权 anywhere but beside a voucher or the core enterprise (issue 22)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("api", "fundflow", "ledger", "docs", "contracts", "scripts")
SUFFIXES = {".py", ".md", ".html", ".sol", ".js", ".json", ".txt", ".csv"}
# 确权 is right where the sentence is about a voucher or the core enterprise acknowledging its payable
VOUCHER_CONTEXT = re.compile(r"voucher|core enterprise|核心企业|payable|应付|凭证|debtor", re.IGNORECASE)


def _texts() -> list[Path]:
    files = [ROOT / "README.md"]
    for top in SOURCES:
        files += [p for p in (ROOT / top).rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return [p for p in files if "node_modules" not in p.parts and "artifacts" not in p.parts]


def wrong_uses(files: list[Path]) -> list[str]:
    found = []
    for path in files:
        if "voucher" in path.name.lower():  # a file about vouchers: 确权 is its subject
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for n, line in enumerate(lines):
            if "确权" not in line:
                continue
            around = " ".join(lines[max(0, n - 1) : n + 2])  # a sentence may wrap onto the next line
            if not VOUCHER_CONTEXT.search(around):
                found.append(f"{path.name}:{n + 1}: {line.strip()}")
    return found


def test_que_quan_is_only_the_core_enterprise_acknowledging_a_voucher() -> None:
    assert wrong_uses(_texts()) == [], "a payee's acknowledgement is 收款确认, not 确权"


def test_the_check_finds_que_quan_used_for_a_payee(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.md"
    wrong.write_text("The payee confirms (确权) the lot it received.\n", encoding="utf-8")
    right = tmp_path / "right.md"
    right.write_text("The core enterprise issues a voucher (确权).\n", encoding="utf-8")
    found = wrong_uses([wrong, right])
    assert len(found) == 1 and "payee confirms" in found[0]


def test_the_payee_side_says_receipt_confirmation() -> None:
    from api.i18n import _LABELS

    assert _LABELS["term_confirmation"][1] == "收款确认"
    assert _LABELS["confirm"] == ("Confirm receipt", "确认收款")
    assert _LABELS["term_acknowledgement"][1] == "确权"  # the core enterprise's word, for vouchers
