"""Test-only stand-in for ``splunk.util`` (what splunktaucclib.cim_actions imports), same semantics
as Splunk's own: ``normalizeBoolean`` maps Splunk's boolean spellings, ``mktimegm`` is calendar.timegm."""

from __future__ import annotations

import calendar
from typing import Any

_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


def normalizeBoolean(value: Any, enableStrictMode: bool = False, includeIntegers: bool = True) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and includeIntegers:
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if enableStrictMode:
        raise ValueError(f"Unable to cast value to boolean: {value!r}")
    return value


def mktimegm(time_tuple: Any) -> int:
    return calendar.timegm(time_tuple)
