"""Dates a person reads: a block's timestamp (unix seconds, UTC) in the bank's time zone.

The chain has no calendar; every event's date is its block's timestamp. Machines keep the block number and
the timestamp; people see the date and time in the bank's zone (`Settings.bank_timezone`, default
Asia/Shanghai), with the zone's offset written so nothing is ambiguous. Pure: no node, no database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

__all__ = ["day_start", "iso_date", "iso_time", "local_date", "local_time"]


def _at(seconds: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(int(seconds), tz=UTC).astimezone(zone)


def iso_time(seconds: int, zone: tzinfo) -> str:
    """ISO 8601 with the zone's offset, to the second: "2026-12-06T21:18:48+08:00" (answers, exports)."""
    return _at(seconds, zone).isoformat(timespec="seconds")


def iso_date(seconds: int, zone: tzinfo) -> str:
    """The calendar day in the bank's zone: "2026-12-06"."""
    return _at(seconds, zone).date().isoformat()


def local_time(seconds: int, zone: tzinfo) -> str:
    """What a page shows: "2026-12-06 21:18" in the bank's zone (the zone is named once on the page)."""
    return _at(seconds, zone).strftime("%Y-%m-%d %H:%M")


def local_date(seconds: int, zone: tzinfo) -> str:
    return iso_date(seconds, zone)


def day_start(day: date, zone: tzinfo) -> int:
    """Unix seconds of midnight starting `day` in the bank's zone (a date filter's bound)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
