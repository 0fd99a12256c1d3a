"""Entra ID and Graph endpoints per Microsoft cloud.

The Graph security API (alerts_v2, incidents, runHuntingQuery) is served in the global cloud
(also GCC) and the two US Government clouds, not in China (21Vianet).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from .errors import ConfigError
from .proxy import refuse_internal_host


@dataclass(frozen=True)
class Endpoints:
    login_root: str  # e.g. https://login.microsoftonline.com
    graph_root: str  # e.g. https://graph.microsoft.com

    @property
    def scope(self) -> str:
        # Client credentials must ask for the national Graph root's own .default scope.
        return f"{self.graph_root}/.default"

    def token_url(self, tenant_id: str) -> str:
        return f"{self.login_root}/{tenant_id}/oauth2/v2.0/token"


CLOUDS = {
    "global": Endpoints("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov_gcchigh": Endpoints("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov_dod": Endpoints("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
}
_CHINA = {"china", "cn", "21vianet", "mooncake", "azurechina"}


def check_base_url(url: str, field: str) -> str:
    """An https URL, or plain http only on a loopback address (local testing); never with credentials
    in it, never a link-local or cloud-metadata address (the account's secret is sent there)."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if "@" in parts.netloc:
        # The userinfo part is not repeated: it may be a password.
        raise ConfigError(f"{field} must not contain a user name or password (user:password@host).")
    if host:
        refuse_internal_host(host, field)
    if parts.scheme == "https" and host:
        return url.strip().rstrip("/")
    if parts.scheme == "http" and _is_loopback(host):
        return url.strip().rstrip("/")
    raise ConfigError(f"{field} must be an https URL (plain http is accepted only on a loopback address): {url!r}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve(cloud: str, login_url: Optional[str] = None, graph_url: Optional[str] = None) -> Endpoints:
    name = (cloud or "global").strip().lower()
    if name in _CHINA:
        raise ConfigError(
            "cloud: the Microsoft Graph security API (alerts_v2, incidents, runHuntingQuery) is not offered "
            "in Microsoft Azure operated by 21Vianet (China); this add-on cannot collect from that cloud."
        )
    if name in CLOUDS:
        return CLOUDS[name]
    if name == "custom":
        if not login_url or not graph_url:
            raise ConfigError("cloud 'custom' needs both login_url and graph_url.")
        return Endpoints(check_base_url(login_url, "login_url"), check_base_url(graph_url, "graph_url"))
    raise ConfigError(f"cloud must be one of global, usgov_gcchigh, usgov_dod or custom, not {cloud!r}.")
