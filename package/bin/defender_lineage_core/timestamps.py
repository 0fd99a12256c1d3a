"""Graph DateTimeOffset values as exact instants.

Graph writes up to seven fractional digits and trims trailing zeros (``...:26.9875Z``), so text
comparison orders them wrongly. Instants are kept as integer ticks of 100 ns since the Unix epoch,
which is exactly Graph's precision: no float rounding can merge or split two versions.

The instants this module formats are those of Graph's ``Edm.DateTimeOffset`` in UTC, from
``0001-01-01T00:00:00Z`` to ``9999-12-31T23:59:59.9999999Z`` (``MIN_TICKS`` .. ``MAX_TICKS``): every
one of them formats and parses back to itself. ``parse_instant`` may return an instant outside that
range (``9999-12-31T23:59:59-14:00`` is past year 9999 in UTC): callers that keep or format an
instant check it with ``in_range`` first.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from typing import Optional

TICKS_PER_SECOND = 10_000_000
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
# The first and the last instant of Edm.DateTimeOffset in UTC (years 1 to 9999, 100 ns steps).
MIN_TICKS = (1 - _EPOCH_ORDINAL) * 86400 * TICKS_PER_SECOND
MAX_TICKS = (_dt.date(9999, 12, 31).toordinal() + 1 - _EPOCH_ORDINAL) * 86400 * TICKS_PER_SECOND - 1
_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_instant(text: object) -> Optional[int]:
    """Ticks for an ISO 8601 timestamp, or None when it is not one. A missing zone means UTC."""
    if type(text) is str and len(text) >= 20 and text[-1] == "Z" and text[13] == ":" and text[16] == ":":
        # Graph's own form (``2026-11-20T23:20:29.3213349Z``), once per item of every page: the
        # date and hour are looked up, minutes, seconds and fraction read off; anything else below.
        hour_start = _hour_seconds(text[:13])
        minute, second, tail = text[14:16], text[17:19], text[19:-1]
        if (
            hour_start is not None
            and minute.isdecimal()
            and second.isdecimal()
            and (not tail or (tail[0] == "." and 2 <= len(tail) <= 10 and tail[1:].isdecimal()))
        ):
            mi, s = int(minute), int(second)
            if mi > 59 or s > 59:
                return None
            return (hour_start + mi * 60 + s) * TICKS_PER_SECOND + (int(tail[1:8].ljust(7, "0")) if tail else 0)
    if not isinstance(text, str):
        return None
    m = _ISO.match(text) or _ISO.match(text.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    days = _days_since_epoch(year, month, day)
    h, mi, s = int(hour or 0), int(minute or 0), int(second or 0)
    if days is None or h > 23 or mi > 59 or s > 59:
        return None
    offset = 0
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    whole = days * 86400 + h * 3600 + mi * 60 + s - offset
    fraction = int(frac[:7].ljust(7, "0")) if frac else 0
    return whole * TICKS_PER_SECOND + fraction


_HOUR = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2})")


@functools.lru_cache(maxsize=4096)
def _hour_seconds(prefix: str) -> Optional[int]:
    """Seconds since the epoch at ``YYYY-MM-DDTHH`` (UTC); None when it is not a valid hour."""
    m = _HOUR.fullmatch(prefix)
    if not m:
        return None
    year, month, day, hour = m.groups()
    days = _days_since_epoch(year, month, day)
    if days is None or int(hour) > 23:
        return None
    return days * 86400 + int(hour) * 3600


@functools.lru_cache(maxsize=4096)
def _days_since_epoch(year: str, month: str, day: str) -> Optional[int]:
    # A backfill parses hundreds of thousands of instants over few days: the calendar check is cached.
    try:
        return _dt.date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


def in_range(ticks: int) -> bool:
    """Whether ``ticks`` is an instant Graph's DateTimeOffset can hold (and ``format_instant`` writes)."""
    return MIN_TICKS <= ticks <= MAX_TICKS


def format_instant(ticks: int) -> str:
    """The seven-digit UTC form Graph accepts in ``$filter`` (``2026-11-20T10:00:26.9875000Z``).

    Raises ValueError outside ``MIN_TICKS`` .. ``MAX_TICKS`` (no year 10000 to write)."""
    if not in_range(ticks):
        raise ValueError(f"instant out of range (years 1 to 9999): {ticks} ticks since 1970")
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    moment = _EPOCH + _dt.timedelta(seconds=seconds)
    # Four-digit year written by hand: strftime("%Y") writes year 999 as "999" on glibc, which no
    # ISO 8601 reader (this module's included) takes back.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{fraction:07d}Z"
    )


def epoch_seconds(ticks: int) -> float:
    return ticks / TICKS_PER_SECOND


def now_ticks() -> int:
    return int((_dt.datetime.now(_dt.timezone.utc) - _EPOCH) / _dt.timedelta(microseconds=1)) * 10
