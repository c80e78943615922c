"""Point-in-time behaviour features of each loan, computed from the mirror (docs/scoring.md has the table).

`compute_features(engine, as_of)` reads only mirror rows whose block's timestamp is at or before `as_of`
(`as_of_block`), so a row indexed later changes nothing; open alerts count by their chain time of raising
(the one limit: an alert's resolution time is the wall clock's, see docs/scoring.md). Everything is read
with a few SQLAlchemy Core queries and computed vectorised with pandas/numpy, so 100,000 loans take seconds
(`make bench`, section scoring-features).

Days past due follow the monitoring rules (`ledger.monitoring.rules.past_due`) and the protocol's schedule
(`LoanTerms.schedule`): a scheduled amount of principal or interest unpaid after its due date counts from
that date, repayments applied oldest first (principal to principal, interest to interest); principal
outstanding after the maturity counts from the maturity; a change of terms never resets a maturity already
passed. Each of these is a *spell* (`Spells`): from its start day, past due until the day it was paid
(exclusive). Days are UTC calendar days of the chain clock (as the rules count them). `dpd_spells` is also
what `ledger.scoring.labels` builds the label from, so features and label agree by construction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.config import Settings
from ledger.protocol.canonical import canonical_json
from ledger.protocol.codes import FileRecordKind, InspectionKind
from ledger.protocol.guarantees import Guarantee, content_hash
from ledger.protocol.servicing import DueItem, add_months
from ledger.protocol.terms import LoanTerms, terms_hash

__all__ = [
    "BlockTimes",
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "Spells",
    "as_of_block",
    "compute_features",
    "dpd_spells",
    "feature",
]

DAY = 86_400
EPOCH = date(1970, 1, 1)
IN_LIMIT = 2000
"""Up to this many loan ids are filtered in SQL (`IN (...)`); more are read whole and filtered in pandas."""


@dataclass(frozen=True)
class Feature:
    """One feature: its column name, the banker's words for it (English, Chinese: what reason codes say),
    its unit, and whether larger (`"high"`) or smaller (`"low"`) values mean riskier."""

    name: str
    en: str
    zh: str
    unit: str
    risk_when: Literal["high", "low"]


FEATURES: tuple[Feature, ...] = (
    Feature("dpd_now", "days past due now", "当前逾期天数", "days", "high"),
    Feature("dpd_max", "most days past due so far", "历史最长逾期天数", "days", "high"),
    Feature("late_3m", "late instalments in the last 3 months", "近3个月逾期期数", "instalments", "high"),
    Feature("late_6m", "late instalments in the last 6 months", "近6个月逾期期数", "instalments", "high"),
    Feature("late_12m", "late instalments in the last 12 months", "近12个月逾期期数", "instalments", "high"),
    Feature("repaid_ratio", "repaid against what was scheduled", "实还与应还之比", "ratio", "low"),
    Feature(
        "undeclared_share",
        "share of the loan paid outside the declared use",
        "未按约定用途支付的资金占比",
        "share of disbursed",
        "high",
    ),
    Feature(
        "prohibited_share",
        "share of the loan paid to prohibited purposes",
        "流向禁止用途的资金占比",
        "share of disbursed",
        "high",
    ),
    Feature(
        "pass_through_hours",
        "how fast money received is paid on (median hours)",
        "资金过账速度(收到至转出的中位小时数)",
        "hours",
        "low",
    ),
    Feature(
        "disputed_payments",
        "payments disputed by their payee",
        "被收款方提出异议的支付笔数",
        "payments",
        "high",
    ),
    Feature(
        "unconfirmed_share",
        "share of payments the payee has not confirmed",
        "收款方未确认的支付占比",
        "share of payments",
        "high",
    ),
    Feature(
        "top_payee_share",
        "share of the money going to the largest payee",
        "最大收款方资金占比",
        "share",
        "high",
    ),
    Feature("payee_hhi", "concentration of payees (HHI)", "收款方集中度(HHI)", "index 0-1", "high"),
    Feature("collateral_cover", "collateral cover", "抵质押物覆盖率", "value / outstanding", "low"),
    Feature(
        "collateral_trend",
        "change in collateral value since the previous valuation",
        "抵质押物较上次估值的变化",
        "fraction",
        "low",
    ),
    Feature("visit_overdue_days", "days a site visit is overdue", "实地走访逾期天数", "days", "high"),
    Feature("restructured", "loan restructured", "贷款已重组", "0/1", "high"),
    Feature("alerts_critical", "open critical alerts", "未关闭的严重预警数", "alerts", "high"),
    Feature("alerts_high", "open high alerts", "未关闭的高级别预警数", "alerts", "high"),
    Feature("alerts_other", "open lower alerts", "未关闭的其他预警数", "alerts", "high"),
    Feature("guarantees", "guarantees backing the loan", "担保笔数", "guarantees", "low"),
    Feature(
        "guarantor_dpd",
        "days past due of the guarantor's own loans",
        "担保人自身贷款逾期天数",
        "days",
        "high",
    ),
    Feature("months_on_book", "months since the loan was opened", "放款后月数", "months", "low"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
_BY_NAME = {f.name: f for f in FEATURES}


def feature(name: str) -> Feature:
    """The feature called `name` (KeyError for an unknown one)."""
    return _BY_NAME[name]


# ---------------------------------------------------------------------------------------------- reading


def _t(name: str, *columns: str) -> sa.TableClause:
    return sa.table(name, *(sa.column(c) for c in columns))


def _day(ts: datetime) -> int:
    return int(_timestamp(ts) // DAY)


def _timestamp(ts: datetime) -> int:
    if ts.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    return int(ts.timestamp())


def as_of_block(conn: sa.Connection, as_of: datetime) -> tuple[int, int]:
    """(chain id, newest indexed block whose timestamp is at or before `as_of`); block -1 when none is."""
    checkpoint = _t("checkpoint", "chain_id")
    chain_id = conn.execute(sa.select(checkpoint.c.chain_id)).scalar()
    if chain_id is None:
        return 0, -1
    blocks = _t("blocks", "chain_id", "number", "timestamp")
    number = conn.execute(
        sa.select(sa.func.max(blocks.c.number)).where(
            blocks.c.chain_id == chain_id, blocks.c.timestamp <= _timestamp(as_of)
        )
    ).scalar()
    return int(chain_id), -1 if number is None else int(number)


def _frame(
    conn: sa.Connection, query: sa.Select[tuple[object, ...]], columns: Sequence[str], *, raw: bool = False
) -> pd.DataFrame:
    """The query's rows as a frame. `raw`: straight from the driver's cursor, skipping SQLAlchemy's row
    objects (a third of the time at 100,000 loans) - only for columns that need no result processing
    (the untyped `_t` columns: text, integers, numbers)."""
    result = conn.execute(query)
    if raw and isinstance(result, sa.CursorResult) and result.cursor is not None:
        try:
            rows = result.cursor.fetchall()
        finally:
            result.close()
        return pd.DataFrame.from_records(rows, columns=list(columns))
    return pd.DataFrame.from_records([tuple(r) for r in result.all()], columns=list(columns))


class BlockTimes:
    """Indexed blocks' timestamps, read once and looked up in memory: a join in SQL let SQLite scan the rows'
    table once per block (blocks x rows). A few blocks (one loan's rows) are read by number; many, all at
    once (two integer columns)."""

    def __init__(self, conn: sa.Connection, chain_id: int) -> None:
        self.conn = conn
        self.chain_id = chain_id
        self._known: dict[int, int] = {}
        self._all = False
        self._numbers = np.empty(0, dtype="int64")  # sorted, with `_times` in the same order
        self._times = np.empty(0, dtype="int64")

    def of(self, numbers: pd.Series) -> np.ndarray:
        wanted = numbers.to_numpy(dtype="int64")
        missing = [] if self._all else [n for n in np.unique(wanted).tolist() if n not in self._known]
        if missing:
            blocks = _t("blocks", "chain_id", "number", "timestamp")
            query = sa.select(blocks.c.number, blocks.c.timestamp).where(blocks.c.chain_id == self.chain_id)
            if len(missing) <= IN_LIMIT:
                query = query.where(blocks.c.number.in_(missing))
            else:
                self._all = True
            self._known.update((int(n), int(t)) for n, t in self.conn.execute(query))
            self._numbers = np.fromiter(sorted(self._known), dtype="int64", count=len(self._known))
            self._times = np.fromiter((self._known[n] for n in self._numbers.tolist()), dtype="int64")
        at = np.searchsorted(self._numbers, wanted)
        found = at < len(self._numbers)
        found[found] = self._numbers[at[found]] == wanted[found]
        if not found.all():
            lost = sorted(set(wanted[~found].tolist()))[:5]
            raise LookupError(f"mirror rows name block(s) {lost} the mirror has no header of: re-index it")
        return self._times[at]


class _Reader:
    """The mirror's rows up to one block, each with its block's timestamp, for a set of loans."""

    def __init__(
        self,
        conn: sa.Connection,
        chain_id: int,
        block: int,
        loan_ids: Sequence[str] | None,
        times: BlockTimes | None = None,
    ) -> None:
        self.conn = conn
        self.chain_id = chain_id
        self.block = block
        self.loan_ids = None if loan_ids is None else sorted(set(loan_ids))
        self.times = times or BlockTimes(conn, chain_id)

    def sub(self, block: int, loan_ids: Sequence[str] | None) -> _Reader:
        """A reader of other loans or another block on the same connection (sharing the block times)."""
        return _Reader(self.conn, self.chain_id, block, loan_ids, self.times)

    def _where(self, table: sa.TableClause) -> list[sa.ColumnElement[bool]]:
        out = [table.c.block_number <= self.block]
        if self.loan_ids is not None and len(self.loan_ids) <= IN_LIMIT:
            out.append(table.c.loan_id.in_(self.loan_ids))
        return out

    def _keep(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.loan_ids is not None and len(self.loan_ids) > IN_LIMIT:
            frame = frame[frame["loan_id"].isin(self.loan_ids)]
        return frame

    def read(
        self,
        table: str,
        columns: Sequence[str],
        amounts: Sequence[str] = (),
        *,
        equal: tuple[str, object] | None = None,
    ) -> pd.DataFrame:
        """`columns` of `table` (always with loan_id, block_number, log_index and the block's `ts`), in chain
        order; `amounts` are Uint64 columns (text on SQLite), returned as int64."""
        t = _t(table, "loan_id", "block_number", "log_index", *[c for c in columns if c != "loan_id"])
        names = ["loan_id", "block_number", "log_index", *[c for c in columns if c != "loan_id"]]
        if "args" in names:
            t.c.args.type = sa.JSON()
        # chain order per loan, sorted by the database (the tables' primary keys start with these columns):
        # sorting 2M rows by their hex ids in pandas took a seventh of the time at 100,000 loans
        query = (
            sa.select(*[t.c[n] for n in names])
            .where(*self._where(t))
            .order_by(t.c.loan_id, t.c.block_number, t.c.log_index)
        )
        if equal is not None:
            query = query.where(t.c[equal[0]] == equal[1])
        frame = self._keep(_frame(self.conn, query, names, raw="args" not in names))
        for c in amounts:
            frame[c] = pd.to_numeric(frame[c]).astype("int64") if len(frame) else frame[c].astype("int64")
        for c in ("block_number", "log_index"):
            frame[c] = frame[c].astype("int64")
        frame["ts"] = self.times.of(frame["block_number"])
        return frame.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- schedules


# (terms hash, principal) -> cumulative schedule rows (due day, principal, interest). A terms document is
# fixed by its hash, so a schedule computed once serves every later call (a dataset's snapshots, a rescoring).
_SCHEDULES: dict[tuple[str, int], tuple[tuple[int, int, int], ...]] = {}
_SCHEDULES_MAX = 1_000_000


def _cumulative(items: Sequence[DueItem]) -> tuple[tuple[int, int, int], ...]:
    out = []
    p = i = 0
    for item in items:
        p += item.principal
        i += item.interest
        out.append(((item.due_date - EPOCH).days, p, i))
    return tuple(out)


def _schedules(
    conn: sa.Connection, loans: pd.DataFrame, terms: dict[str, LoanTerms] | None
) -> dict[str, tuple[tuple[int, int, int], ...]]:
    """Each loan's cumulative schedule from the terms in force (`loans.terms_hash`, the hash in force at the
    block): `terms` when given (loan id -> terms), else the version of the API's `terms_versions` with that
    hash, only where the stored document hashes to it (as `ledger.store.offchain.terms_at` checks them).
    Only the schedule's parts of the document are validated (`LoanTerms.schedule` computes it)."""
    principal = dict(zip(loans["loan_id"], loans["principal"].astype("int64"), strict=True))
    wanted = dict(zip(loans["loan_id"], loans["terms_hash"], strict=True))
    out: dict[str, tuple[tuple[int, int, int], ...]] = {}
    if terms is not None:
        for loan_id, t in terms.items():
            if loan_id in principal:
                out[loan_id] = _cumulative(t.schedule(int(principal[loan_id])))
        return out
    if not len(loans) or not sa.inspect(conn).has_table("terms_versions"):
        return out
    missing = []
    for loan_id, wanted_hash in wanted.items():
        cached = _SCHEDULES.get((str(wanted_hash), int(principal[loan_id])))
        if cached is not None:
            out[loan_id] = cached
        else:
            missing.append(loan_id)
    if not missing:
        return out
    versions = _t("terms_versions", "loan_id", "terms", "terms_hash")
    versions.c.terms.type = sa.JSON()
    if len(_SCHEDULES) + len(missing) > _SCHEDULES_MAX:
        _SCHEDULES.clear()
    # Every version of the loans still to compute (one loan has a few), kept where its hash is the one in
    # force at the block.
    chunks: Iterable[Sequence[str] | None] = (
        _chunks(missing, IN_LIMIT) if len(missing) <= 8 * IN_LIMIT else [None]
    )
    for chunk in chunks:
        query = sa.select(versions.c.loan_id, versions.c.terms, versions.c.terms_hash)
        if chunk is not None:
            query = query.where(versions.c.loan_id.in_(chunk))
        for loan_id, document, stored_hash in conn.execute(query):
            if loan_id in out or loan_id not in principal or wanted.get(loan_id) != stored_hash:
                continue
            if not isinstance(document, dict) or terms_hash(document) != stored_hash:
                continue  # edited after the fact: not what the lender committed to
            try:
                part = {k: document[k] for k in ("interest", "repayment_schedule") if k in document}
                items = LoanTerms.from_document(part).schedule(int(principal[loan_id]))
            except (ValueError, TypeError):
                continue
            out[loan_id] = _SCHEDULES[(stored_hash, int(principal[loan_id]))] = _cumulative(items)
    return out


def _schedule_items(schedules: dict[str, tuple[tuple[int, int, int], ...]]) -> pd.DataFrame:
    """One row per scheduled due date: loan_id, due (day number), cumulative principal and interest due."""
    loan_ids = [loan_id for loan_id, rows in schedules.items() for _ in rows]
    flat = np.asarray([row for rows in schedules.values() for row in rows], dtype="int64").reshape(-1, 3)
    return pd.DataFrame(
        {
            "loan_id": pd.Series(loan_ids, dtype=object),
            "due": flat[:, 0],
            "cum_p": flat[:, 1],
            "cum_i": flat[:, 2],
        }
    )


def _first_day_reaching(payments: pd.DataFrame, column: str, targets: pd.DataFrame) -> pd.Series:
    """For each row of `targets` (loan_id, target), the first payment day on which the loan's cumulative
    `column` reached `target` (-inf for a target <= 0; NaN when not yet reached), aligned to `targets`."""
    out = pd.Series(np.nan, index=targets.index, dtype="float64")
    out[targets["target"] <= 0] = -np.inf
    need = targets[targets["target"] > 0]
    if not len(need) or not len(payments):
        return out
    right = (
        payments.groupby(["loan_id", column], sort=False)["day"]
        .min()
        .reset_index()
        .rename(columns={column: "key"})
    )
    right["key"] = right["key"].astype("int64")
    right = right.sort_values("key", kind="stable")
    left = need[["loan_id", "target"]].assign(_row=need.index).sort_values("target", kind="stable")
    left["target"] = left["target"].astype("int64")
    left["loan_id"] = left["loan_id"].astype(str)
    right["loan_id"] = right["loan_id"].astype(str)
    merged = pd.merge_asof(
        left,
        right,
        left_on="target",
        right_on="key",
        by="loan_id",
        direction="forward",
        allow_exact_matches=True,
    )
    out.loc[merged["_row"].to_numpy()] = merged["day"].to_numpy(dtype="float64")
    return out


@dataclass
class Spells:
    """Every past-due spell of the loans as known at one block: `frame` has loan_id, `start` (day number
    the count runs from) and `end` (day the amount was paid, NaN while unpaid: on that day it is no longer
    past due); `items` the scheduled due dates with the day each was paid; `loans` one row per loan with its
    opening/closing and amounts at that block."""

    frame: pd.DataFrame
    items: pd.DataFrame
    loans: pd.DataFrame
    repayments: pd.DataFrame

    def dpd_at(self, day: int) -> pd.Series:
        """Days past due at the end of `day`, per loan (0 when none; index loan_id)."""
        f = self.frame
        live = f[(f["start"] < day) & ~(f["end"] <= day)]
        days = (day - live["start"]).groupby(live["loan_id"], sort=False).max()
        return days.reindex(self.loans["loan_id"]).fillna(0.0)

    def dpd_max_at(self, day: int) -> pd.Series:
        """The most days past due reached on any day up to `day`, per loan."""
        f = self.frame[self.frame["start"] < day]
        peak = np.minimum(f["end"].fillna(np.inf) - 1, day) - f["start"]
        peak = peak.clip(lower=0)
        return peak.groupby(f["loan_id"], sort=False).max().reindex(self.loans["loan_id"]).fillna(0.0)


def _loans(conn: sa.Connection, reader: _Reader) -> pd.DataFrame:
    loans = reader.read("loans", ["borrower", "principal", "maturity", "terms_hash", "status"], ["principal"])
    events = reader.read("events", ["name", "args"], equal=("name", "LoanClosed"))
    closed = events.groupby("loan_id", sort=False).agg(
        closed_block=("block_number", "min"), closed_ts=("ts", "min")
    )
    status = events.groupby("loan_id", sort=False)["args"].last().map(_closed_status)
    loans = loans.join(closed, on="loan_id").join(status.rename("closed_status"), on="loan_id")
    return loans.rename(columns={"ts": "opened_ts", "block_number": "opened_block"})


def _closed_status(args: object) -> int:
    if isinstance(args, dict):
        for key in ("newStatus", "status"):
            if key in args:
                return int(args[key])
    return 0


def dpd_spells(
    conn: sa.Connection,
    chain_id: int,
    block: int,
    loan_ids: Sequence[str] | None = None,
    *,
    terms: dict[str, LoanTerms] | None = None,
    times: BlockTimes | None = None,
) -> Spells:
    """The past-due spells of every loan opened at or before `block`, from rows at or before it. `times`:
    block times already read on this connection."""
    reader = _Reader(conn, chain_id, block, loan_ids, times)
    loans = _loans(conn, reader)
    restr = _restructurings(reader, loan_ids)
    loans["terms_hash"] = _terms_hash_then(conn, reader, loans, restr, block)
    items = _schedule_items(_schedules(conn, loans, terms))

    rep = reader.read("repayments", ["amount", "interest"], ["amount", "interest"])
    rep["day"] = rep["ts"] // DAY
    rep["cum_p"] = rep.groupby("loan_id", sort=False)["amount"].cumsum()
    rep["cum_i"] = rep.groupby("loan_id", sort=False)["interest"].cumsum()

    paid_p = _first_day_reaching(rep, "cum_p", items.rename(columns={"cum_p": "target"}))
    paid_i = _first_day_reaching(rep, "cum_i", items.rename(columns={"cum_i": "target"}))
    items["paid"] = np.fmax(paid_p, paid_i).where(paid_p.notna() & paid_i.notna())
    spells = [items[["loan_id", "due"]].rename(columns={"due": "start"}).assign(end=items["paid"])]

    # principal outstanding after the maturity in force at `block`
    lots = reader.read("lots", ["parent_lot_id", "amount"], ["amount"])
    disbursed = lots[lots["parent_lot_id"].isna()].groupby("loan_id", sort=False)["amount"].sum()
    loans["disbursed"] = loans["loan_id"].map(disbursed).fillna(0).astype("int64")
    loans["repaid"] = (
        loans["loan_id"].map(rep.groupby("loan_id", sort=False)["amount"].sum()).fillna(0).astype("int64")
    )
    maturity = loans.set_index("loan_id")["maturity"].astype("int64")
    later = (
        restr[restr["block_number"] > block]
        .groupby("loan_id", sort=False)["previous_maturity"]
        .first()
        .dropna()
    )
    maturity.update(later.astype("int64"))
    loans["maturity_now"] = loans["loan_id"].map(maturity)
    due_now = loans[loans["disbursed"] > 0]
    paid_off = _first_day_reaching(rep, "cum_p", due_now.rename(columns={"disbursed": "target"}))
    spells.append(
        pd.DataFrame(
            {"loan_id": due_now["loan_id"], "start": due_now["maturity_now"] // DAY, "end": paid_off}
        )
    )

    # a maturity already passed when the terms changed keeps counting until that principal is repaid
    passed = restr[
        (restr["block_number"] <= block)
        & restr["previous_maturity"].notna()
        & (restr["previous_maturity"] < restr["ts"])
        & (restr["outstanding"].fillna(0) > 0)
    ]
    if len(passed):
        targets = []
        for r in passed.itertuples():
            mine = rep[
                (rep["loan_id"] == r.loan_id)
                & (
                    (rep["block_number"] < r.block_number)
                    | ((rep["block_number"] == r.block_number) & (rep["log_index"] < r.log_index))
                )
            ]
            paid_before = int(mine["amount"].sum())
            targets.append((r.loan_id, paid_before + int(r.outstanding), int(r.previous_maturity) // DAY))
        t = pd.DataFrame(targets, columns=["loan_id", "target", "start"])
        spells.append(t[["loan_id", "start"]].assign(end=_first_day_reaching(rep, "cum_p", t)))

    frame = pd.concat(spells, ignore_index=True)
    # a written-off (or repaid) loan is not past due after it closed
    closed_day = frame["loan_id"].map(loans.set_index("loan_id")["closed_ts"] // DAY)
    frame["end"] = np.fmin(frame["end"].fillna(np.inf), closed_day.fillna(np.inf)).replace(np.inf, np.nan)
    frame = frame[frame["loan_id"].isin(loans["loan_id"])]
    return Spells(frame.reset_index(drop=True), items, loans, rep)


def _terms_hash_then(
    conn: sa.Connection, reader: _Reader, loans: pd.DataFrame, restr: pd.DataFrame, block: int
) -> pd.Series:
    """The terms hash in force at `block`: the latest change of terms at or before it, else the opening's
    (read from the LoanOpened event for loans whose terms changed later; the others still have it)."""
    current = loans.set_index("loan_id")["terms_hash"].copy()
    changed = restr[restr["loan_id"].isin(current.index)]
    if not len(changed):
        return loans["terms_hash"]
    then = changed[changed["block_number"] <= block].groupby("loan_id", sort=False)["terms_hash"].last()
    first = reader.sub(block, sorted(set(changed["loan_id"]) - set(then.index)))
    if first.loan_ids:
        opened = first.read("events", ["name", "args"], equal=("name", "LoanOpened"))
        current.update(opened.set_index("loan_id")["args"].map(lambda a: str(a.get("termsHash", "")).lower()))
    current.update(then)
    return loans["loan_id"].map(current)


def _restructurings(reader: _Reader, loan_ids: Sequence[str] | None) -> pd.DataFrame:
    """Every change of terms (all blocks: the maturity in force at a block needs the later ones too)."""
    r = reader.sub(1 << 62, loan_ids).read(
        "restructurings", ["maturity", "previous_maturity", "outstanding", "terms_hash"]
    )
    for c in ("previous_maturity", "outstanding"):
        r[c] = pd.to_numeric(r[c]).astype("float64")
    return r


# ---------------------------------------------------------------------------------------------- features


def compute_features(
    engine: Engine,
    as_of: datetime,
    loan_ids: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    terms: dict[str, LoanTerms] | None = None,
) -> pd.DataFrame:
    """One row per loan opened at or before `as_of` and not closed before it (index `loan_id`), one float
    column per `FEATURES` name in that order, NaN where a feature does not apply. Only mirror rows of
    blocks at or before `as_of` count. `terms` overrides the stored terms (loan id -> terms; tests)."""
    _timestamp(as_of)  # a naive date is refused before anything is read
    s = settings or Settings()
    with engine.connect() as conn:
        chain_id, block = as_of_block(conn, as_of)
        if block < 0:
            return _empty()
        times = BlockTimes(conn, chain_id)
        sp = dpd_spells(conn, chain_id, block, loan_ids, terms=terms, times=times)
        loans = sp.loans
        loans = loans[loans["closed_block"].isna() | (loans["closed_block"] > block)]
        if not len(loans):
            return _empty()
        reader = _Reader(conn, chain_id, block, list(loans["loan_id"]), times)
        today = _day(as_of)
        ts_now = _timestamp(as_of)
        out = pd.DataFrame(index=pd.Index(loans["loan_id"], name="loan_id"))
        ids = out.index

        out["dpd_now"] = sp.dpd_at(today).reindex(ids)
        out["dpd_max"] = sp.dpd_max_at(today).reindex(ids)
        _late(out, sp.items, as_of)
        _repaid_ratio(out, sp, today)
        lots = reader.read(
            "lots", ["lot_id", "parent_lot_id", "holder", "amount", "purpose", "declared_use"], ["amount"]
        )
        _use(out, lots, set(s.prohibited_purposes))
        _pass_through(out, lots)
        _confirmations(out, reader, lots, ts_now, s.unconfirmed_days)
        _payees(out, lots, loans)
        _collateral(out, reader, loans.set_index("loan_id"))
        _visits(out, reader, loans, today, list(s.site_visit_interval_days))
        restr = reader.read("restructurings", [])
        out["restructured"] = ids.isin(restr["loan_id"]).astype("float64")
        _alerts(out, conn, ts_now)
        _guarantees(out, conn, reader, chain_id, block, today)
        out["months_on_book"] = (ts_now - loans.set_index("loan_id")["opened_ts"]) / (DAY * 365.25 / 12)
        return out[list(FEATURE_NAMES)].astype("float64")


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {name: pd.Series(dtype="float64") for name in FEATURE_NAMES},
        index=pd.Index([], name="loan_id", dtype=object),
    )


def _late(out: pd.DataFrame, items: pd.DataFrame, as_of: datetime) -> None:
    """Instalments due in the last 3/6/12 months (before today) paid after their due date or still unpaid."""
    today = _day(as_of)
    late = items[(items["due"] < today) & ~(items["paid"] <= items["due"])]
    for months in (3, 6, 12):
        since = (add_months(as_of.astimezone(UTC).date(), -months) - EPOCH).days
        counted = late[late["due"] >= since].groupby("loan_id", sort=False).size()
        out[f"late_{months}m"] = counted.reindex(out.index).fillna(0.0)


def _repaid_ratio(out: pd.DataFrame, sp: Spells, today: int) -> None:
    """Principal and interest repaid over principal and interest scheduled due by today (NaN: none due)."""
    items = sp.items[sp.items["due"] <= today]
    due = (items.groupby("loan_id", sort=False)[["cum_p", "cum_i"]].max()).sum(axis=1)
    rep = sp.repayments
    paid = (rep["amount"] + rep["interest"]).groupby(rep["loan_id"], sort=False).sum()
    ratio = paid.reindex(due.index).fillna(0) / due.where(due > 0)
    out["repaid_ratio"] = ratio.reindex(out.index)


def _use(out: pd.DataFrame, lots: pd.DataFrame, prohibited: set[int]) -> None:
    disbursed = lots[lots["parent_lot_id"].isna()].groupby("loan_id", sort=False)["amount"].sum()
    base = disbursed.reindex(out.index)
    base = base.where(base > 0)
    undeclared = lots[~lots["declared_use"].astype(bool)].groupby("loan_id", sort=False)["amount"].sum()
    banned = lots[lots["purpose"].astype(int).isin(prohibited)].groupby("loan_id", sort=False)["amount"].sum()
    out["undeclared_share"] = undeclared.reindex(out.index).fillna(0) / base
    out["prohibited_share"] = banned.reindex(out.index).fillna(0) / base


def _pass_through(out: pd.DataFrame, lots: pd.DataFrame) -> None:
    """Median hours between a lot's receipt and each payment out of it (NaN: no onward payment)."""
    parents = lots[["loan_id", "lot_id", "ts"]].rename(columns={"lot_id": "parent_lot_id", "ts": "parent_ts"})
    children = lots[lots["parent_lot_id"].notna()].merge(
        parents, on=["loan_id", "parent_lot_id"], how="inner"
    )
    hours = (children["ts"] - children["parent_ts"]) / 3600.0
    out["pass_through_hours"] = hours.groupby(children["loan_id"], sort=False).median().reindex(out.index)


def _confirmations(
    out: pd.DataFrame, reader: _Reader, lots: pd.DataFrame, now: int, unconfirmed_days: float
) -> None:
    """Lots whose latest confirmation state (as of now) is disputed; share of lots older than the payee's
    confirmation window with no answer yet."""
    conf = reader.read("confirmations", ["lot_id", "state"])
    latest = conf.groupby(["loan_id", "lot_id"], sort=False)["state"].last().rename("state").reset_index()
    merged = lots.merge(latest, on=["loan_id", "lot_id"], how="left")
    disputed = merged[merged["state"] == "disputed"].groupby("loan_id", sort=False).size()
    out["disputed_payments"] = disputed.reindex(out.index).fillna(0.0)
    due = merged[merged["ts"] <= now - unconfirmed_days * DAY]
    waiting = due["state"].isna().groupby(due["loan_id"], sort=False).mean()
    out["unconfirmed_share"] = waiting.reindex(out.index)


def _payees(out: pd.DataFrame, lots: pd.DataFrame, loans: pd.DataFrame) -> None:
    """Amounts paid to each payee other than the borrower: the largest payee's share and the HHI."""
    borrower = lots["loan_id"].map(loans.set_index("loan_id")["borrower"])
    paid = lots[lots["holder"] != borrower]
    by_payee = paid.groupby(["loan_id", "holder"], sort=False)["amount"].sum().astype("float64")
    total = by_payee.groupby(level="loan_id", sort=False).transform("sum")
    share = by_payee / total
    out["top_payee_share"] = share.groupby(level="loan_id", sort=False).max().reindex(out.index)
    out["payee_hhi"] = (share**2).groupby(level="loan_id", sort=False).sum().reindex(out.index)


def _collateral(out: pd.DataFrame, reader: _Reader, loans: pd.DataFrame) -> None:
    """Latest value of each collateral item over the principal outstanding, and the latest values over the
    previous ones (items valued at least twice) minus one."""
    v = reader.read("collateral_valuations", ["collateral_id", "value"], ["value"])
    g = v.groupby(["loan_id", "collateral_id"], sort=False)["value"]
    latest = g.last().groupby(level="loan_id", sort=False).sum().astype("float64")
    outstanding = (loans["disbursed"] - loans["repaid"]).astype("float64")
    out["collateral_cover"] = latest.reindex(out.index) / outstanding.reindex(out.index).where(
        lambda x: x > 0
    )
    v = v.assign(prev=g.shift(1))
    pairs = v.groupby(["loan_id", "collateral_id"], sort=False).tail(1).dropna(subset=["prev"])
    sums = pairs.groupby("loan_id", sort=False)[["value", "prev"]].sum().astype("float64")
    out["collateral_trend"] = (sums["value"] / sums["prev"].where(sums["prev"] > 0) - 1).reindex(out.index)


def _visits(
    out: pd.DataFrame, reader: _Reader, loans: pd.DataFrame, today: int, intervals: list[int]
) -> None:
    """Days past the next site visit due (the last visit, or the opening, plus the interval for the loan's
    risk class then: FUNDFLOW_SITE_VISIT_INTERVAL_DAYS); 0 when not yet due."""
    insp = reader.read("inspections", ["kind"])
    visits = insp[insp["kind"].astype(int) == int(InspectionKind.SITE_VISIT)]
    last = visits.groupby("loan_id", sort=False)["ts"].max()
    since = loans.set_index("loan_id")["opened_ts"].copy()
    since.update(last)
    cls = reader.read("classifications", ["risk_class"]).groupby("loan_id", sort=False)["risk_class"].last()
    risk = cls.reindex(since.index).fillna(0).astype(int).clip(0, len(intervals) - 1)
    interval = risk.map(lambda c: intervals[c])
    overdue = today - (since // DAY + interval)
    out["visit_overdue_days"] = overdue.clip(lower=0).astype("float64").reindex(out.index)


_SEVERITY_COLUMN = {"critical": "alerts_critical", "high": "alerts_high"}


def _alerts(out: pd.DataFrame, conn: sa.Connection, now: int) -> None:
    """Alerts raised (chain time) at or before now and not resolved before it, by severity. Resolution
    times are the wall clock's (`resolved_at`): see docs/scoring.md for what that means in the past."""
    for c in ("alerts_critical", "alerts_high", "alerts_other"):
        out[c] = 0.0
    if not sa.inspect(conn).has_table("alerts"):
        return
    alerts = _t("alerts", "loan_id", "severity", "raised_chain_time", "resolved_at")
    alerts.c.resolved_at.type = sa.DateTime(timezone=True)
    rows = _frame(
        conn,
        sa.select(alerts.c.loan_id, alerts.c.severity, alerts.c.resolved_at).where(
            alerts.c.raised_chain_time <= now
        ),
        ["loan_id", "severity", "resolved_at"],
    )
    # SQLite hands back naive datetimes (stored as UTC); compare in Python, not as text in SQL
    moment = datetime.fromtimestamp(now, UTC)
    resolved = rows["resolved_at"].map(lambda t: t if t is None or t.tzinfo else t.replace(tzinfo=UTC))
    open_then = pd.Series(
        [t is None or pd.isna(t) or t > moment for t in resolved], index=rows.index, dtype=bool
    )
    rows = rows[open_then]
    rows["column"] = rows["severity"].map(_SEVERITY_COLUMN).fillna("alerts_other")
    counts = rows.groupby(["loan_id", "column"], sort=False).size().unstack(fill_value=0)
    for c in counts.columns:
        out[c] = counts[c].reindex(out.index).fillna(0).astype("float64")


def _guarantees(
    out: pd.DataFrame, conn: sa.Connection, reader: _Reader, chain_id: int, block: int, today: int
) -> None:
    """Active guarantees at the block (given, not released, content checked) and the most days past due of
    any guarantor that is itself a borrower here (0 if none is; NaN without a guarantee)."""
    out["guarantees"] = 0.0
    out["guarantor_dpd"] = np.nan
    records = reader.read("file_records", ["record_kind", "record_id", "content_hash"])
    if not len(records):
        return
    released = records[records["record_kind"].astype(int) == int(FileRecordKind.GUARANTEE_RELEASED)]
    given = records[
        (records["record_kind"].astype(int) == int(FileRecordKind.GUARANTEE))
        & (records["record_id"] == records["content_hash"])
    ]
    given = given[
        ~given.set_index(["loan_id", "record_id"]).index.isin(
            released.set_index(["loan_id", "record_id"]).index
        )
    ]
    parties = _guarantors(conn, given)
    given = given.assign(party=given["record_id"].map(parties)).dropna(subset=["party"])
    out["guarantees"] = given.groupby("loan_id", sort=False).size().reindex(out.index).fillna(0.0)
    if not len(given):
        return
    loans = _t("loans", "loan_id", "borrower")
    borrowers = _frame(conn, sa.select(loans.c.loan_id, loans.c.borrower), ["loan_id", "borrower"])
    guarantor_loans = borrowers[borrowers["borrower"].str.lower().isin(given["party"].str.lower())]
    dpd = pd.Series(dtype="float64")
    if len(guarantor_loans):
        sp = dpd_spells(conn, chain_id, block, list(guarantor_loans["loan_id"]), times=reader.times)
        dpd = sp.dpd_at(today)
    by_borrower = dpd.groupby(
        guarantor_loans.set_index("loan_id")["borrower"].str.lower().reindex(dpd.index), sort=False
    ).max()
    worst = given["party"].str.lower().map(by_borrower).fillna(0.0)
    out["guarantor_dpd"] = worst.groupby(given["loan_id"], sort=False).max().reindex(out.index)


def _guarantors(conn: sa.Connection, given: pd.DataFrame) -> dict[str, str]:
    """record id -> guarantor party, for guarantees whose stored content still hashes to the record."""
    if not len(given) or not sa.inspect(conn).has_table("file_contents"):
        return {}
    contents = _t("file_contents", "hash", "content")
    contents.c.content.type = sa.JSON()
    out: dict[str, str] = {}
    hashes = sorted(set(given["content_hash"]))
    for chunk in _chunks(hashes, 1000):
        for h, content in conn.execute(
            sa.select(contents.c.hash, contents.c.content).where(contents.c.hash.in_(chunk))
        ):
            if not isinstance(content, dict) or content_hash(canonical_json(content)) != h:
                continue
            try:
                out[h] = Guarantee.from_document(content).party
            except ValueError:
                continue
    return out


def _chunks(values: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for i in range(0, len(values), size):
        yield values[i : i + size]
