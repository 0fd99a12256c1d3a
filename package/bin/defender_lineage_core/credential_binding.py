"""A stored credential goes only to the endpoints it was saved with.

Editing an account, UCC sends an encrypted field left unchanged as ``******``; the save-time check
then uses the stored, decrypted secret. Without this rule, anyone allowed to edit accounts could
keep the stored secret, point ``login_url`` at a server of theirs and have the check POST the secret
there. So an edit that changes where the credential is sent (the token endpoint and Graph root that
``cloud``, ``login_url`` and ``graph_url`` resolve to) must carry the credential itself: the client
secret, or the certificate and its private key. The rule is checked before any request is made.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from .clouds import Endpoints, resolve
from .errors import ConfigError

PLACEHOLDERS = ("******", "********")  # what UCC sends for an encrypted field left unchanged
ENCRYPTED_FIELDS = ("client_secret", "certificate", "private_key")
ENDPOINT_FIELDS = ("cloud", "login_url", "graph_url")

REENTER_MESSAGE = (
    "Cloud, Login URL or Graph URL changed: enter the credential again in the same save (the client secret, "
    "or the certificate and its private key). A stored credential is only ever sent to the endpoints it was "
    "saved with."
)


def _text(values: Mapping[str, Any], key: str) -> str:
    value = values.get(key)
    return value.strip() if isinstance(value, str) else ""


def entered(payload: Mapping[str, Any], key: str) -> bool:
    """Whether the save carries a new value for the encrypted field ``key`` (not the placeholder)."""
    value = _text(payload, key)
    return bool(value) and value not in PLACEHOLDERS


def _endpoints(values: Mapping[str, Any]) -> Optional[Endpoints]:
    try:
        return resolve(_text(values, "cloud") or "global", _text(values, "login_url"), _text(values, "graph_url"))
    except ConfigError:
        return None


def refuse_redirected_credential(payload: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` when an edit moves the account's endpoints but keeps the stored credential.

    ``stored``: the account as saved (decrypted); empty on create, when there is nothing stored to
    redirect. Endpoints are compared as they resolve (switching ``cloud`` from ``custom`` to
    ``global`` with the same URLs is a move too).
    """
    if not stored or not any(key in payload for key in ENDPOINT_FIELDS):
        return
    merged = {**stored, **{k: v for k, v in payload.items() if k in ENDPOINT_FIELDS and v is not None}}
    before, after = _endpoints(stored), _endpoints(merged)
    if after is None or (before is not None and before == after):
        return  # unchanged, or invalid: the field check explains an invalid value, nothing is sent
    auth_type = _text(payload, "auth_type") or _text(stored, "auth_type") or "client_secret"
    if auth_type == "certificate":
        if entered(payload, "certificate") and entered(payload, "private_key"):
            return
    elif entered(payload, "client_secret"):
        return
    raise ConfigError(REENTER_MESSAGE)


PROXY_ENDPOINT_FIELDS = ("proxy_url", "proxy_port", "proxy_type")

PROXY_REENTER_MESSAGE = (
    "Proxy host, port or type changed: enter the proxy password again in the same save (or clear it). "
    "A stored proxy password is only ever sent to the proxy it was saved for."
)


def _proxy_endpoint(values: Mapping[str, Any]) -> tuple[str, str, str]:
    port = _text(values, "proxy_port")
    return (
        _text(values, "proxy_url").lower(),
        str(int(port)) if port.isdigit() else port,
        _text(values, "proxy_type").lower() or "http",
    )


def refuse_redirected_proxy_password(payload: Mapping[str, Any], stored: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` when a proxy edit points the proxy elsewhere but keeps the stored password.

    The proxy password travels to the proxy itself (``Proxy-Authorization``, or SOCKS5's RFC 1929
    exchange), unlike the account's secret, which a CONNECT or SOCKS5 tunnel carries inside TLS. So
    it is bound to the proxy's host, port and type as the account's credential is bound to its
    endpoints. ``stored``: the proxy stanza as saved (decrypted). A save that leaves the password
    out or sends UCC's placeholder keeps the stored one; an empty value clears it (nothing is sent).
    """
    if not _text(stored, "proxy_password"):
        return  # nothing stored to redirect
    merged = {**stored, **{k: v for k, v in payload.items() if k in PROXY_ENDPOINT_FIELDS and v is not None}}
    if _proxy_endpoint(merged) == _proxy_endpoint(stored):
        return
    if "proxy_password" in payload and _text(payload, "proxy_password") not in PLACEHOLDERS:
        return  # re-entered (or cleared) in this very save
    raise ConfigError(PROXY_REENTER_MESSAGE)
