"""Errors the collector raises, each with a message an admin can act on.

Messages never carry a token, a secret or a session key: they are built only from the HTTP
status, the resource name and the few known fields of an error body (Graph's ``error.code`` and
``error.message``, Entra's ``error`` and AADSTS number, the request / trace / correlation ids).
An error body is never echoed raw: whatever a field holds passes ``safe_text`` first (control
characters escaped, so an embedded newline cannot forge a log line; bearer tokens and JWTs
redacted; truncated).
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


class ResponseTooLarge(MalformedResponse):
    """A response body (once decompressed) passed the size cap; reading stopped there."""


class PagingLoop(MalformedResponse):
    """Graph sent an ``@odata.nextLink`` already followed in the same listing."""


REQUIRED_PERMISSION = {
    "alerts_v2": "SecurityAlert.Read.All",
    "incidents": "SecurityIncident.Read.All",
    "runHuntingQuery": "ThreatHunting.Read.All",
}

_AADSTS = re.compile(r"AADSTS(\d+)")

# -- text from a remote body -----------------------------------------------------------------------

# JWTs (three base64url parts, the first an encoded JSON header "{"...) and "Bearer <anything>".
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
SAFE_TEXT_LIMIT = 200


def safe_text(value: Any, limit: int = SAFE_TEXT_LIMIT) -> str:
    """A remote-supplied string made fit for a log line or a REST error: bearer tokens and JWTs
    redacted, control characters (newlines included), ``"`` and ``=`` escaped as ``\\xNN`` /
    ``\\uNNNN`` (so it can neither start a log line nor add a key=value field to one), at most
    ``limit`` characters. Redaction runs first, so truncation cannot cut a token into an unredacted
    tail."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    text = text[: limit * 8]  # bound the work on a huge field before the regexes run
    text = _BEARER.sub("Bearer <redacted>", text)
    text = _JWT.sub("<redacted token>", text)
    text = _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)
    # The log's own delimiters: no key=value pair and no end of a quoted message="..." can be forged.
    text = text.replace('"', "\\x22").replace("=", "\\x3d")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_id(value: Any) -> str:
    """An error code or request id: kept when it looks like one, else passed through ``safe_text``."""
    if not isinstance(value, str):
        return ""
    return value if _ID.match(value) else safe_text(value, 80)


def _ids(body: Any) -> str:
    """``request-id ... trace-id ...``: the ids Microsoft support asks for, from a Graph or Entra body."""
    found = []
    inner = body.get("error") if isinstance(body, dict) else None
    inner = inner.get("innerError") or inner.get("innererror") if isinstance(inner, dict) else None
    sources = [(inner, ("request-id", "client-request-id")), (body, ("trace_id", "correlation_id"))]
    for source, names in sources:
        if isinstance(source, dict):
            # An id that does not look like one is dropped, not shown: it says nothing support can use.
            found += [f"{name}={source[name]}" for name in names if _ID.match(str(source.get(name) or ""))]
    return f" [{' '.join(found)}]" if found else ""


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
    "7000229": "the application is not consented in this tenant (no service principal): grant admin consent there",
    "65001": "the application is not consented in this tenant: grant admin consent there",
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
    """Explain a failed token request from Entra's error body (only its known fields, made safe)."""
    if status == 200:
        return AuthError(
            f"token request for account '{account}' got HTTP 200 but not Entra ID's JSON token answer (no "
            "access_token; an HTML page or other text): check Login URL and Cloud, and whether a proxy or captive "
            "portal answers instead of Entra ID.",
            status=status,
            code="NotATokenAnswer",
        )
    error = safe_id(_field(body, "error"))
    match = _AADSTS.search(_field(body, "error_description") or "")
    aadsts = match.group(1) if match else ""
    advice = _AADSTS_ADVICE.get(aadsts, "check the account's tenant, client id, credential and cloud")
    label = f"AADSTS{aadsts}" if aadsts else error
    detail = f" ({error})" if error and error != label else ""
    said = f"{label}{detail}" if label else "(no Entra error code in the answer)"
    return AuthError(
        f"token request for account '{account}' failed with HTTP {status} {said}: {advice}.{_ids(body)}",
        status=status,
        code=label or f"HTTP {status}",
    )


def graph_error(status: int, body: Any, resource: str) -> GraphError:
    """Explain a Graph error answer for one resource."""
    code = safe_id(_field(body, "error", "code")) or f"HTTP {status}"
    message = safe_text((_field(body, "error", "message") or "").strip()) + _ids(body)
    if status == 403:
        permission = REQUIRED_PERMISSION.get(resource, "the resource's read permission")
        return MissingPermission(
            f"Graph refused {resource} with HTTP 403 {code}: the app registration needs the application "
            f"permission {permission} (Microsoft Graph) with admin consent granted in the tenant. "
            f"Graph said: {message}",
            status=status,
            code=code,
            resource=resource,
        )
    if status == 401:
        return AuthError(
            f"Graph refused the access token for {resource} with HTTP 401 {code}: {message}",
            status=status,
            code=code,
            resource=resource,
        )
    return GraphError(
        f"Graph answered {resource} with HTTP {status} {code}: {message}",
        status=status,
        code=code,
        resource=resource,
    )
