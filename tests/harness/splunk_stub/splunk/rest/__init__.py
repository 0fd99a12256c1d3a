"""Test-only stand-in for ``splunk.rest``: ``simpleRequest`` against the splunkd stand-in."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Mapping, Optional, Tuple

import splunk


class Response(dict):  # httplib2.Response is a dict of headers with a .status
    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__({k.lower(): v for k, v in headers.items()})
        self.status = status
        self.reason = reason
        self["status"] = str(status)


def _messages(content: bytes) -> str:
    try:
        doc = json.loads(content.decode("utf-8"))
        return "; ".join(m.get("text", "") for m in doc.get("messages", []))
    except (ValueError, AttributeError):
        return content.decode("utf-8", "replace")[:500]


def simpleRequest(
    path: str,
    sessionKey: Optional[str] = None,
    getargs: Optional[Mapping[str, Any]] = None,
    postargs: Optional[Mapping[str, Any]] = None,
    method: str = "GET",
    raiseAllErrors: bool = False,
    proxyMode: bool = False,
    rawResult: bool = False,
    timeout: Optional[float] = None,
    jsonargs: Optional[str] = None,
    token: bool = False,
) -> Tuple[Response, bytes]:
    """Perform a request against ``$SPLUNK_STANDIN_URI``; returns (response, content bytes)."""
    base = os.environ.get("SPLUNK_STANDIN_URI")
    if not base:
        raise splunk.SplunkdConnectionException("SPLUNK_STANDIN_URI is not set")
    if path.startswith(("http://", "https://")):
        url = path
    else:
        if not path.startswith("/"):
            path = "/services/" + path
        url = base.rstrip("/") + urllib.parse.quote(path, safe="/:@-._~!$&'()*+,;=%")
    if getargs:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(dict(getargs), doseq=True)
    data: Optional[bytes] = None
    headers: Dict[str, str] = {}
    if jsonargs is not None:
        data = jsonargs.encode("utf-8")
        headers["Content-Type"] = "application/json"
    elif postargs is not None:
        data = urllib.parse.urlencode(dict(postargs), doseq=True).encode("utf-8")
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    if data is not None and method == "GET":
        method = "POST"
    key = sessionKey or os.environ.get("SPLUNK_STANDIN_SESSION_KEY", "")
    if key:
        headers["Authorization"] = key if key.startswith(("Splunk ", "Bearer ")) else f"Splunk {key}"
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout or 30) as resp:
            status, reason, resp_headers, content = resp.status, resp.reason, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        status, reason, resp_headers, content = exc.code, str(exc.reason), dict(exc.headers), exc.read()
    except OSError as exc:
        raise splunk.SplunkdConnectionException(f"Error connecting to {path}: {exc}") from None
    response = Response(status, reason, resp_headers)
    if status == 401:
        raise splunk.AuthenticationFailed(_messages(content))
    if status == 402:
        raise splunk.LicenseRestriction(_messages(content))
    if status == 403:
        raise splunk.AuthorizationFailed(_messages(content))
    if status == 404:  # splunk.rest raises this one whatever raiseAllErrors says
        raise splunk.ResourceNotFound(_messages(content))
    if raiseAllErrors and status >= 400:
        if status == 400:
            raise splunk.BadRequest(_messages(content))
        if status == 500:
            raise splunk.InternalServerError(_messages(content))
        raise splunk.RESTException(status, _messages(content))
    return response, content
