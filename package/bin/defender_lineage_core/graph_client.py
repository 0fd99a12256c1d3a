"""Microsoft Graph client: client-credentials token, retries, opaque paging.

Knows nothing of Splunk: the caller passes a configured ``requests.Session`` (proxy, TLS).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlsplit

import requests

from .clouds import Endpoints
from .errors import (
    AuthError,
    ConfigError,
    GraphError,
    MalformedResponse,
    TransientError,
    auth_error,
    graph_error,
)

PREFER_ALL_ENUMS = "include-unknown-enum-members"
# Refresh this long before Entra's expiry, so a token never dies between two pages.
TOKEN_SAFETY_SECONDS = 300
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass
class ClientStats:
    requests: int = 0
    token_requests: int = 0
    retries: int = 0
    throttled: int = 0


@dataclass
class Page:
    items: List[Dict[str, Any]]
    next_link: Optional[str]


@dataclass
class ClientSecret:
    secret: str = field(repr=False)

    def form(self, token_url: str, client_id: str) -> Dict[str, str]:
        return {"client_secret": self.secret}


class GraphClient:
    def __init__(
        self,
        endpoints: Endpoints,
        tenant_id: str,
        client_id: str,
        credential: ClientSecret,
        account: str,
        session: Optional[requests.Session] = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        logger: Optional[logging.Logger] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = endpoints
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._credential = credential
        self.account = account
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_retries = max_retries
        self.log = logger or logging.getLogger(__name__)
        self._sleep = sleep
        self._clock = clock
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self.stats = ClientStats()
        self._graph = urlsplit(endpoints.graph_root)

    # -- token -----------------------------------------------------------------------------
    def token(self, force: bool = False) -> str:
        if not force and self._token and self._clock() < self._token_expires:
            return self._token
        token_url = self.endpoints.token_url(self.tenant_id)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "scope": self.endpoints.scope,
            **self._credential.form(token_url, self.client_id),
        }
        response = self._send("POST", token_url, resource="token", data=form)
        body = _json_or_none(response)
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise auth_error(response.status_code, body, self.account)
        self.stats.token_requests += 1
        lifetime = float(body.get("expires_in") or 3599)
        self._token = str(body["access_token"])
        self._token_expires = self._clock() + max(lifetime - TOKEN_SAFETY_SECONDS, lifetime / 2)
        return self._token

    # -- pages -----------------------------------------------------------------------------
    def resource_url(self, resource: str) -> str:
        return f"{self.endpoints.graph_root}/v1.0/security/{resource}"

    def get_page(self, url: str, resource: str, params: Optional[Dict[str, str]] = None) -> Page:
        """One page of a collection; ``url`` is the resource URL or a nextLink from Graph."""
        self._check_link(url)
        refreshed = False
        while True:
            headers = {
                "Authorization": f"Bearer {self.token()}",
                "Prefer": PREFER_ALL_ENUMS,
                "Accept": "application/json",
            }
            response = self._send("GET", url, resource=resource, params=params, headers=headers)
            if response.status_code == 401 and not refreshed:
                # A token can expire or be revoked mid-paging: one fresh token, one more try.
                refreshed = True
                self.token(force=True)
                continue
            if response.status_code != 200:
                raise graph_error(response.status_code, _json_or_none(response), resource)
            return self._parse_page(response, resource)

    def pages(self, resource: str, params: Dict[str, str]) -> Iterator[Page]:
        """Every page of a listing, following ``@odata.nextLink`` as an opaque URL."""
        page = self.get_page(self.resource_url(resource), resource, params)
        yield page
        while page.next_link:
            page = self.get_page(page.next_link, resource)
            yield page

    def _parse_page(self, response: requests.Response, resource: str) -> Page:
        try:
            body = json.loads(response.content)
        except ValueError:
            raise MalformedResponse(
                f"Graph answered {resource} with HTTP {response.status_code} but the body is not JSON "
                f"({len(response.content)} bytes); the cursor stays where it was.",
                status=response.status_code,
                resource=resource,
            ) from None
        items = body.get("value") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise MalformedResponse(
                f"Graph answered {resource} with HTTP {response.status_code} but the body has no 'value' "
                "list; the cursor stays where it was.",
                status=response.status_code,
                resource=resource,
            )
        next_link = body.get("@odata.nextLink")
        if next_link is not None and not isinstance(next_link, str):
            raise MalformedResponse(f"Graph sent a non-text @odata.nextLink for {resource}.", resource=resource)
        return Page([i for i in items if isinstance(i, dict)], next_link or None)

    def _check_link(self, url: str) -> None:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != (self._graph.scheme, self._graph.netloc.lower()):
            raise GraphError(
                f"refusing to follow a link to {parts.scheme}://{parts.hostname}: it leaves the configured "
                f"Graph host {self._graph.scheme}://{self._graph.hostname}."
            )

    # -- transport -------------------------------------------------------------------------
    def _send(self, method: str, url: str, resource: str, **kwargs: Any) -> requests.Response:
        attempt = 0
        while True:
            self.stats.requests += 1
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = type(exc).__name__
                if attempt >= self.max_retries:
                    raise TransientError(
                        f"{resource}: {reason} after {attempt + 1} attempts; the cursor stays, next run continues.",
                        resource=resource,
                    ) from None
                self._pause(attempt, None, resource, reason)
                attempt += 1
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return response
            if response.status_code == 429:
                self.stats.throttled += 1
            if attempt >= self.max_retries:
                if resource == "token":
                    raise auth_error(response.status_code, _json_or_none(response), self.account)
                error = graph_error(response.status_code, _json_or_none(response), resource)
                raise TransientError(
                    f"{error} (gave up after {attempt + 1} attempts; the cursor stays, next run continues)",
                    status=response.status_code,
                    code=error.code,
                    resource=resource,
                )
            self._pause(attempt, response.headers.get("Retry-After"), resource, f"HTTP {response.status_code}")
            attempt += 1

    def _pause(self, attempt: int, retry_after: Optional[str], resource: str, reason: str) -> None:
        self.stats.retries += 1
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            # No advice from Graph: exponential back-off with full jitter, as Graph asks.
            delay = random.uniform(0, min(60.0, 2.0 ** (attempt + 1)))  # noqa: S311
        self.log.warning(
            "graph_retry resource=%s reason=%s attempt=%d wait_s=%.2f", resource, reason, attempt + 1, delay
        )
        self._sleep(delay)


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), 300.0)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


__all__ = ["AuthError", "ClientSecret", "ConfigError", "GraphClient", "Page"]
