"""Instants as integer ticks (100 ns since the Unix epoch), the precision Graph keeps."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

TICKS_PER_SECOND = 10_000_000
TICKS_PER_MS = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# OData DateTimeOffset literal: unquoted ISO-8601, 0-7 fractional digits, Z or +hh:mm / -hh:mm.
_LITERAL_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})$")


def dt_to_ticks(dt: datetime) -> int:
    """Aware datetime (naive = UTC) to ticks."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def ticks_to_dt(ticks: int) -> datetime:
    """Ticks to an aware UTC datetime (truncated to microseconds)."""
    secs, frac = divmod(ticks, TICKS_PER_SECOND)
    return EPOCH + timedelta(seconds=secs, microseconds=frac // 10)


def format_ticks(ticks: int, trim: bool = False) -> str:
    """Graph's DateTimeOffset text: 7 fractional digits, or trailing zeros trimmed when `trim`."""
    secs, frac = divmod(ticks, TICKS_PER_SECOND)
    base = (EPOCH + timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:07d}"
    if trim:
        digits = digits.rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def parse_literal(text: str) -> Optional[int]:
    """Parse an OData DateTimeOffset literal to ticks; None when malformed."""
    m = _LITERAL_RE.match(text)
    if m is None:
        return None
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    frac = int((m.group(7) or "").ljust(7, "0"))
    try:
        dt = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
    except ValueError:
        return None
    ticks = dt_to_ticks(dt) + frac
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[4:6])
        if hh > 23 or mm > 59:
            return None
        ticks -= sign * (hh * 3600 + mm * 60) * TICKS_PER_SECOND
    return ticks


def parse_any(value: object) -> int:
    """datetime, ticks (int) or ISO text to ticks (used by set_clock and the tenant API)."""
    if isinstance(value, datetime):
        return dt_to_ticks(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        ticks = parse_literal(value)
        if ticks is None:
            raise ValueError(f"not an ISO-8601 UTC instant: {value!r}")
        return ticks
    raise TypeError(f"cannot use {type(value).__name__} as an instant")
