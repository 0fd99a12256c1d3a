"""Account, proxy and input settings as this add-on stores them, checked before use.

Pure functions over plain dicts, so the REST handlers, the inputs and the tests share one
definition of what a valid account is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from .clouds import Endpoints, resolve
from .errors import ConfigError
from .proxy import ProxyMap, proxy_settings
from .timestamps import TICKS_PER_SECOND, parse_instant

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
AUTH_TYPES = ("client_secret", "certificate")
DEFAULT_LOOKBACK_DAYS = 7
MIN_INTERVAL = 60


@dataclass(frozen=True)
class Account:
    name: str
    tenant_id: str
    client_id: str
    auth_type: str
    endpoints: Endpoints
    client_secret: str = field(default="", repr=False)
    certificate: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)


def _text(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return value.strip() if isinstance(value, str) else ""


def check_account_fields(values: Mapping[str, Any], creating: bool) -> None:
    """Refuse an account as it is saved; each message names the field."""
    for key in ("tenant_id", "client_id"):
        if key in values or creating:
            if not GUID.match(_text(values, key)):
                raise ConfigError(f"{key} must be a GUID such as 4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31.")
    auth_type = _text(values, "auth_type") or "client_secret"
    if auth_type not in AUTH_TYPES:
        raise ConfigError(f"auth_type must be client_secret or certificate, not {auth_type!r}.")
    if creating and auth_type == "client_secret" and not _text(values, "client_secret"):
        raise ConfigError("client_secret is required when auth_type is client_secret.")
    if creating and auth_type == "certificate":
        for key in ("certificate", "private_key"):
            if not _text(values, key):
                raise ConfigError(f"{key} is required when auth_type is certificate.")
    if "cloud" in values or creating:
        resolve(_text(values, "cloud") or "global", _text(values, "login_url"), _text(values, "graph_url"))


def account_from_conf(name: str, values: Mapping[str, Any]) -> Account:
    """An account as read back from the conf file and storage/passwords (decrypted)."""
    if not values:
        raise ConfigError(f"account '{name}' does not exist: create it on the add-on's Configuration page.")
    check_account_fields(values, creating=True)
    return Account(
        name=name,
        tenant_id=_text(values, "tenant_id").lower(),
        client_id=_text(values, "client_id").lower(),
        auth_type=_text(values, "auth_type") or "client_secret",
        endpoints=resolve(_text(values, "cloud") or "global", _text(values, "login_url"), _text(values, "graph_url")),
        client_secret=_text(values, "client_secret"),
        certificate=_text(values, "certificate"),
        private_key=_text(values, "private_key"),
    )


def start_ticks(start_date: Optional[str], now: int) -> int:
    """Where a first run begins: ``start_date``, or seven days back."""
    if not start_date or not start_date.strip():
        return now - DEFAULT_LOOKBACK_DAYS * 86400 * TICKS_PER_SECOND
    ticks = parse_instant(start_date)
    if ticks is None:
        raise ConfigError(
            f"start_date must be an ISO 8601 date or time such as 2026-11-01T00:00:00Z, not {start_date!r}."
        )
    return ticks


def interval_seconds(value: Any) -> int:
    try:
        seconds = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"interval must be a number of seconds, not {value!r}.") from None
    if seconds < MIN_INTERVAL:
        raise ConfigError(f"interval must be at least {MIN_INTERVAL} seconds, not {seconds}.")
    return seconds


def is_true(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "t", "y", "on")


def proxies_from_settings(values: Mapping[str, Any]) -> Dict[str, str]:
    """requests' proxies mapping from the proxy tab, or {} when the proxy is off.

    The URLs carry no credentials (a :class:`ProxyMap` carries them to the session's adapter), so no
    exception or log line can ever hold the proxy password.
    """
    settings = proxy_settings(values)
    return ProxyMap(settings) if settings is not None else {}
