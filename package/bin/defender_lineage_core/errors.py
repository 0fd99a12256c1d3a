"""Errors the collector raises, each with a message an admin can act on.

Messages never carry a token, a secret or a session key: they are built only from the HTTP
status, the Entra/Graph error code and the resource name.
"""

from __future__ import annotations

import re
from typing import Any, Optional


class DefenderLineageError(Exception):
    """Base class: the message is safe to log and to show."""


class ConfigError(DefenderLineageError):
    """A setting is missing or invalid; names the field."""


class GraphError(DefenderLineageError):
    """Graph or Entra answered with an error (after any retries)."""

    def __init__(self, message: str, status: int = 0, code: str = "", resource: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.resource = resource


class AuthError(GraphError):
    """The token request failed: tenant, client id, secret or certificate is wrong."""


class MissingPermission(GraphError):
    """Graph answered 403: an application permission or its admin consent is missing."""


class TransientError(GraphError):
    """Throttling, 5xx, timeouts and resets that outlived the retry budget."""


class MalformedResponse(GraphError):
    """Graph answered 200 with a body that is not the JSON page it promised."""


REQUIRED_PERMISSION = {
    "alerts_v2": "SecurityAlert.Read.All",
    "incidents": "SecurityIncident.Read.All",
    "runHuntingQuery": "ThreatHunting.Read.All",
}

_AADSTS = re.compile(r"AADSTS(\d+)")

# Entra error codes an admin meets when setting up an app registration, and what to do about each.
_AADSTS_ADVICE = {
    "7000215": "the client secret is wrong: use the secret's Value (not its Secret ID) from the app registration",
    "7000222": "the client secret has expired: create a new secret in the app registration and update the account",
    "90002": "the tenant was not found: check the account's Tenant ID and cloud",
    "900023": "the tenant id is not a valid tenant identifier: check the account's Tenant ID",
    "700016": "the application was not found in this tenant: check the Client ID, the tenant and the cloud",
    "700027": "the client assertion could not be verified: upload this certificate to the app registration",
    "700024": "the client assertion is outside its validity window: check the clock of this Splunk host",
    "7000112": "the application is disabled in the tenant",
    "50034": "the account does not exist in this tenant",
    "1002012": "the scope is invalid for this cloud: check the account's cloud",
}


def _field(body: Any, *path: str) -> Optional[str]:
    for key in path:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body if isinstance(body, str) else None


def auth_error(status: int, body: Any, account: str) -> AuthError:
    """Explain a failed token request from Entra's error body."""
    code = _field(body, "error") or f"HTTP {status}"
    description = _field(body, "error_description") or ""
    match = _AADSTS.search(description)
    aadsts = match.group(1) if match else ""
    advice = _AADSTS_ADVICE.get(aadsts, "check the account's tenant, client id, credential and cloud")
    label = f"AADSTS{aadsts}" if aadsts else code
    return AuthError(
        f"token request for account '{account}' failed with HTTP {status} {label} ({code}): {advice}.",
        status=status,
        code=label,
    )


def graph_error(status: int, body: Any, resource: str) -> GraphError:
    """Explain a Graph error answer for one resource."""
    code = _field(body, "error", "code") or f"HTTP {status}"
    message = (_field(body, "error", "message") or "").strip()
    if status == 403:
        permission = REQUIRED_PERMISSION.get(resource, "the resource's read permission")
        return MissingPermission(
            f"Graph refused {resource} with HTTP 403 {code}: the app registration needs the application "
            f"permission {permission} (Microsoft Graph) with admin consent granted in the tenant. "
            f"Graph said: {_short(message)}",
            status=status,
            code=code,
            resource=resource,
        )
    if status == 401:
        return AuthError(
            f"Graph refused the access token for {resource} with HTTP 401 {code}: {_short(message)}",
            status=status,
            code=code,
            resource=resource,
        )
    return GraphError(
        f"Graph answered {resource} with HTTP {status} {code}: {_short(message)}",
        status=status,
        code=code,
        resource=resource,
    )


def _short(text: str, limit: int = 300) -> str:
    # Graph messages are safe (no credentials), but can be long.
    return text if len(text) <= limit else text[: limit - 3] + "..."
