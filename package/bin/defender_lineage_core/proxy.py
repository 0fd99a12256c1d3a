"""The add-on's outbound proxy (Configuration > Proxy), built so the proxy password never sits in a URL.

requests takes proxy credentials inside the proxy URL (``http://user:password@host:port``), and that
URL then travels into exception messages (``InvalidURL``, ``ProxyError``, urllib3's pool reprs) and
from there into tracebacks, logs and REST errors. Here the proxy URLs carry only scheme, host and
port; the credentials live in a transport adapter that hands them to urllib3 directly: a
``Proxy-Authorization`` header for an HTTP proxy (sent with CONNECT), the username and password
arguments of urllib3's ``SOCKSProxyManager`` for SOCKS5 (PySocks).

Hosts an admin could use to aim the add-on's traffic at the host's own cloud-metadata service or a
link-local address are refused (:func:`refuse_internal_host`, shared with the custom cloud URLs).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import requests
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter
from requests.auth import _basic_auth_str

from .errors import ConfigError

# The proxy types offered on the Proxy tab. socks5h: the proxy resolves Graph's and Entra's names,
# as the Splunk host behind a proxy often cannot. socks4 is not offered: it has no password
# authentication (only a user id), and it is not tested.
PROXY_SCHEMES = {"http": "http", "socks5": "socks5h"}

# A host name (labels of letters, digits and hyphens), an IPv4 address, or a bracketed IPv6
# address. The same pattern is the Proxy tab's UI and REST validator (globalConfig.json).
PROXY_HOST = re.compile(
    r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$"
)

# Cloud instance-metadata services (they hand out the host's cloud credentials to whoever asks from
# the host): AWS/Azure/GCP/OpenStack 169.254.169.254, AWS IMDS over IPv6 fd00:ec2::254, ECS task
# metadata 169.254.170.2, Alibaba 100.100.100.200, Oracle 192.0.0.192, and their well-known names.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "192.0.0.192")
)
METADATA_NAMES = frozenset(
    (
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.packet.net",
        "metadata.platformequinix.com",
    )
)


def _address(host: str) -> Optional[Any]:
    """The IP address a host literal stands for, including the forms inet_aton accepts
    (``2852039166``, ``0xA9.0xFE.0xA9.0xFE``), which connect() honours; None for a name."""
    text = host.strip("[]")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if not re.fullmatch(r"[0-9A-Fa-fxX.]+", text):
            return None
        try:
            address = ipaddress.ip_address(socket.inet_aton(text))
        except OSError:
            return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


def refuse_internal_host(host: str, field_name: str) -> None:
    """Refuse a link-local address (169.254.0.0/16, fe80::/10) or a cloud-metadata endpoint."""
    name = host.strip().rstrip(".").lower()
    address = _address(name)
    if name in METADATA_NAMES or (address is not None and address in METADATA_ADDRESSES):
        raise ConfigError(f"{field_name} must not point at a cloud instance-metadata service ({host}).")
    if address is not None and address.is_link_local:
        raise ConfigError(f"{field_name} must not be a link-local address (169.254.0.0/16, fe80::/10): {host}.")


@dataclass(frozen=True)
class ProxySettings:
    """The Proxy tab, checked; ``password`` never appears in a repr, a URL or a message."""

    kind: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """The proxy URL requests is given: scheme, host and port, never credentials."""
        return f"{PROXY_SCHEMES[self.kind]}://{self.host}:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


class ProxyMap(Dict[str, str]):
    """requests' ``proxies`` mapping (credential-free URLs) that also carries the proxy's settings,
    so the session can be given its credentials by :func:`mount_proxy_credentials`."""

    def __init__(self, settings: ProxySettings) -> None:
        super().__init__(http=settings.url, https=settings.url)
        self.settings = settings

    def __repr__(self) -> str:  # a dict's repr would be fine, but say what it is
        return f"ProxyMap({self.settings.kind}://{self.settings.label})"


def proxy_auth_message(label: str = "", cause: str = "HTTP 407") -> str:
    """What a proxy's refusal of its credentials means (an HTTP proxy's 407, a SOCKS5 proxy's failed
    authentication), for the account check and the inputs' ``run_failed`` line alike."""
    proxy = f"The proxy {label}" if label else "The proxy"
    return (
        f"{proxy} requires authentication or refused its credentials ({cause}): check the proxy username "
        "and password on the Configuration > Proxy tab."
    )


def proxy_settings(values: Mapping[str, Any]) -> Optional[ProxySettings]:
    """The Proxy tab's stanza as settings, or None when the proxy is off. Messages name the field and
    never carry the password."""

    def text(key: str) -> str:
        value = values.get(key)
        return value.strip() if isinstance(value, str) else ""

    if not values or text("proxy_enabled").lower() not in ("1", "true", "yes", "t", "y", "on"):
        return None
    host, port_text = text("proxy_url"), text("proxy_port")
    if not host or not port_text:
        raise ConfigError("proxy_url and proxy_port are required when the proxy is enabled.")
    if "@" in host or "://" in host or not PROXY_HOST.match(host):
        raise ConfigError(
            "proxy_url must be a host name, an IPv4 address or a bracketed IPv6 address, without scheme, "
            f"credentials or port (e.g. proxy.corp.example.com, 10.1.2.3, [2001:db8::1]), not {host!r}."
        )
    if host.startswith("[") and _address(host) is None:
        raise ConfigError(f"proxy_url {host!r} is not a valid IPv6 address.")
    refuse_internal_host(host, "proxy_url")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError(f"proxy_port must be a whole number from 1 to 65535, not {port_text[:20]!r}.")
    kind = (text("proxy_type") or "http").lower()
    if kind not in PROXY_SCHEMES:
        raise ConfigError(f"proxy_type must be http or socks5, not {kind[:20]!r}.")
    username = text("proxy_username")
    return ProxySettings(kind, host, int(port_text), username, text("proxy_password") if username else "")


class ProxyCredentialsAdapter(HTTPAdapter):
    """An HTTPAdapter that authenticates to the proxy without a password in the proxy URL."""

    def __init__(self, settings: ProxySettings, **kwargs: Any) -> None:
        self._proxy = settings
        super().__init__(**kwargs)

    def proxy_headers(self, proxy: str) -> Dict[str, str]:
        if self._proxy.username and self._proxy.kind == "http":
            return {"Proxy-Authorization": _basic_auth_str(self._proxy.username, self._proxy.password)}
        return {}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy in self.proxy_manager or not proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        from urllib3.contrib.socks import SOCKSProxyManager  # PySocks; imported only when SOCKS is used

        manager = SOCKSProxyManager(
            proxy,
            username=self._proxy.username or None,
            password=self._proxy.password or None,
            # the pool sizes HTTPAdapter.__init__ stored (private attributes requests' own code reads)
            num_pools=getattr(self, "_pool_connections", DEFAULT_POOLSIZE),
            maxsize=getattr(self, "_pool_maxsize", DEFAULT_POOLSIZE),
            block=getattr(self, "_pool_block", DEFAULT_POOLBLOCK),
            **proxy_kwargs,
        )
        self.proxy_manager[proxy] = manager
        return manager


def mount_proxy_credentials(session: requests.Session, proxies: Mapping[str, str]) -> None:
    """Give ``session`` the proxy's credentials, when ``proxies`` is a :class:`ProxyMap` with a user."""
    settings = getattr(proxies, "settings", None)
    if isinstance(settings, ProxySettings) and settings.username:
        adapter = ProxyCredentialsAdapter(settings)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
