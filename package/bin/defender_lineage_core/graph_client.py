"""Microsoft Graph client: client-credentials token, request budget, retries, paging.

Knows nothing of Splunk: the caller passes a configured ``requests.Session`` (proxy, TLS).

Retries (``send_with_retries``: the one retry loop, for token requests, listings, writes and hunting
queries alike; ``_send`` is one try): 429 and 503 wait for ``Retry-After`` (seconds, fractional
allowed, or an HTTP date); without it, and for 500/502/504, timeouts and connection resets,
exponential back-off with jitter
(1-2 s, 2-4 s, 4-8 s ...), at most ``max_retries`` times, then ``TransientError``. 400, 401 (after
one token refresh), 403 and 404 are never retried. Every Graph request (retries included) first
takes a slot from the request budget (``budget.py``); token requests do not. When ``deadline``
is set, no wait (budget, Retry-After, back-off) may end past it and no exchange may end later than
``DEADLINE_GRACE_SECONDS`` past it: ``DeadlineReached`` ends the run cleanly and the cursor stays.

Every exchange (token, page, hunting query, account check) has a TOTAL deadline besides the
per-read ``timeout`` (``transport.py``): ``EXCHANGE_READS`` read timeouts at most (5 minutes by
default), never past the run's deadline plus the grace; its decoded body is capped at
``max_body`` bytes (64 MiB by default).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AbstractSet, Any, Callable, Dict, Iterator, List, Mapping, Optional, Protocol, Tuple
from urllib.parse import urlsplit

import requests

from .budget import DeadlineReached, RequestBudget, wait_for_slot
from .clouds import Endpoints
from .errors import (
    AuthError,
    ConfigError,
    GraphError,
    MalformedResponse,
    PagingLoop,
    TransientError,
    auth_error,
    graph_error,
    safe_text,
)
from .odata import BadItem, PageFormatError, parse_collection_bytes
from .page_slots import PageSlots
from .proxy import mount_proxy_credentials
from .transport import MAX_BODY_BYTES, ExchangeTimeout, bounded_exchange

if TYPE_CHECKING:
    from .settings import Account

PREFER_ALL_ENUMS = "include-unknown-enum-members"
# Refresh this long before Entra's expiry, so a token never dies between two pages.
TOKEN_SAFETY_SECONDS = 300
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_SECONDS = 300.0
# An exchange may end this far past the run's deadline; a run ends within its interval plus this
# grace (plus the writing of the page in hand), whatever the server does.
DEADLINE_GRACE_SECONDS = 5.0
# One exchange (connect, headers, whole body) may last at most this many per-read timeouts.
EXCHANGE_READS = 5
# Entra's token lifetime when ``expires_in`` is missing or not a positive number (what Entra sends
# for a client-credentials token: 3599 s); a token that dies sooner gets a 401 and one refresh.
DEFAULT_TOKEN_LIFETIME = 3599.0
MAX_TOKEN_LIFETIME = 86400.0  # Entra's longest configurable access-token lifetime is 24 h
DEFAULT_TIMEOUT_SECONDS = 60.0
TIMEOUT_ENV = "TA_DEFENDER_LINEAGE_HTTP_TIMEOUT"


def timeout_from_environment(environ: Mapping[str, str]) -> float:
    """Seconds an HTTP request to Entra ID or Graph may take: 60, or ``TA_DEFENDER_LINEAGE_HTTP_TIMEOUT``
    (a test and diagnostic knob in splunkd's environment, not a setting)."""
    try:
        value = float((environ.get(TIMEOUT_ENV) or "").strip())
    except ValueError:
        return DEFAULT_TIMEOUT_SECONDS
    return value if 0 < value <= 600 else DEFAULT_TIMEOUT_SECONDS


@dataclass
class ClientStats:
    requests: int = 0
    token_requests: int = 0
    retries: int = 0
    throttled: int = 0
    budget_wait_seconds: float = 0.0


@dataclass
class Page:
    items: List[Dict[str, Any]]
    next_link: Optional[str]
    texts: Optional[List[str]] = None  # each item's JSON exactly as Graph sent it
    bad: List[BadItem] = field(default_factory=list)  # items left out or repaired (odata.py)


# What to fetch after a page: (url, query options or None for an opaque nextLink), or None to stop.
NextRequest = Tuple[str, Optional[Dict[str, str]]]
Follow = Callable[[Page], Optional[NextRequest]]


def follow_next_link(page: Page) -> Optional[NextRequest]:
    return (page.next_link, None) if page.next_link else None


class Credential(Protocol):
    """What proves the app's identity in a token request: a client secret or a certificate."""

    def form(self, token_url: str, client_id: str) -> Dict[str, str]: ...


@dataclass
class ClientSecret:
    secret: str = field(repr=False)

    def form(self, token_url: str, client_id: str) -> Dict[str, str]:
        return {"client_secret": self.secret}


def account_session(
    proxies: Mapping[str, str], user_agent: Optional[str] = None, session: Optional[requests.Session] = None
) -> requests.Session:
    """``session`` (a new one by default) set up for one account's traffic to Entra ID and Graph."""
    session = session if session is not None else requests.Session()
    session.trust_env = False  # only the add-on's own proxy settings apply, never the environment's
    # Only the encodings transport.py inflates under its cap (requests adds br/zstd when their modules exist).
    session.headers["Accept-Encoding"] = "gzip, deflate"
    if user_agent:
        session.headers["User-Agent"] = user_agent
    session.proxies.update(dict(proxies))
    mount_proxy_credentials(session, proxies)  # the proxy password never goes into a proxy URL
    return session


def client_for_account(
    account: Account, credential: Credential, session: requests.Session, **options: Any
) -> GraphClient:
    """The GraphClient of a configured account (``options``: GraphClient's keyword arguments)."""
    return GraphClient(
        account.endpoints,
        account.tenant_id,
        account.client_id,
        credential,
        account=account.name,
        session=session,
        **options,
    )


class GraphClient:
    def __init__(
        self,
        endpoints: Endpoints,
        tenant_id: str,
        client_id: str,
        credential: Credential,
        account: str,
        session: Optional[requests.Session] = None,
        timeout: float = 60.0,
        max_retries: int = 5,
        logger: Optional[logging.Logger] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        budget: Optional[RequestBudget] = None,
        deadline: Optional[float] = None,
        rng: Optional[random.Random] = None,
        exchange_timeout: Optional[float] = None,
        max_body: int = MAX_BODY_BYTES,
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
        self.budget = budget
        self.deadline = deadline  # a value of ``clock``; None: no deadline
        self.exchange_timeout = exchange_timeout  # None: EXCHANGE_READS x timeout
        self.max_body = max_body
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._token: Optional[str] = None
        self._token_expires = 0.0
        self.stats = ClientStats()
        # Shared by the tenants of one run (page_slots.py); None: pages are bounded by the caller alone.
        self.page_slots: Optional[PageSlots] = None
        self._page_slot = threading.local()  # this thread's page fetch: wants a slot, holds one
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
        response = send_with_retries(self, self.retry_policy(), "POST", token_url, "token", data=form)
        body = _json_or_none(response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise auth_error(response.status_code, body, self.account)
        self.stats.token_requests += 1
        lifetime = self._lifetime(body.get("expires_in"))
        self._token = token
        self._token_expires = self._clock() + max(lifetime - TOKEN_SAFETY_SECONDS, lifetime / 2)
        return self._token

    def _lifetime(self, expires_in: Any) -> float:
        """Seconds the token lives: Entra's ``expires_in`` (a number, or a numeric string as older
        endpoints send), else ``DEFAULT_TOKEN_LIFETIME`` with one warning. Zero, negative, NaN or
        infinite values would mean a token per request (or a token kept forever): never trusted."""
        seconds: Optional[float] = None
        if isinstance(expires_in, (int, float, str)) and not isinstance(expires_in, bool):
            try:
                seconds = float(expires_in)
            except ValueError:
                seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds > 0:
            return min(seconds, MAX_TOKEN_LIFETIME)
        self.log.warning(
            "token_lifetime account=%s expires_in=%s: Entra's answer has no usable expires_in; the token is "
            "used for %d s (a 401 before then gets one fresh token)",
            self.account,
            "missing" if expires_in is None else safe_text(json.dumps(expires_in), 40),
            DEFAULT_TOKEN_LIFETIME,
        )
        return DEFAULT_TOKEN_LIFETIME

    # -- pages -----------------------------------------------------------------------------
    def resource_url(self, resource: str) -> str:
        return f"{self.endpoints.graph_root}/v1.0/security/{resource}"

    def get_page(
        self,
        url: str,
        resource: str,
        params: Optional[Dict[str, str]] = None,
        fail_fast: AbstractSet[int] = frozenset(),
    ) -> Page:
        """One page of a collection; ``url`` is the resource URL or a nextLink from Graph.

        ``fail_fast``: statuses answered at once instead of retried (a query the caller can replace).
        """
        return self._parse_page(self._fetch_page(url, resource, params, fail_fast), resource)

    def _fetch_page(
        self,
        url: str,
        resource: str,
        params: Optional[Dict[str, str]] = None,
        fail_fast: AbstractSet[int] = frozenset(),
    ) -> requests.Response:
        """The HTTP 200 answer for one page, body read; everything else raised as a GraphError."""
        self._check_link(url, resource)
        headers = {"Prefer": PREFER_ALL_ENUMS, "Accept": "application/json"}
        response = self.send_with_token("GET", url, resource, headers, params=params, fail_fast=fail_fast)
        if response.status_code != 200:
            raise graph_error(response.status_code, _json_or_none(response), resource)
        return response

    def send_with_token(
        self,
        method: str,
        url: str,
        resource: str,
        headers: Mapping[str, str],
        on_attempt: Optional[Callable[[], None]] = None,
        policy: Optional[RetryPolicy] = None,
        answer: Optional[Callable[[requests.Response], bool]] = None,
        on_retry: Optional[Callable[[int], None]] = None,
        fail_fast: AbstractSet[int] = frozenset(),
        **kwargs: Any,
    ) -> requests.Response:
        """A Graph request with the bearer token, through the client's one retry loop
        (``send_with_retries``: budget, Retry-After, back-off, deadline, one fresh token on a 401).

        ``policy``: how that loop waits (by default this client's sleep, clock, deadline and retries);
        ``answer``: a retryable answer the caller handles itself (e.g. hunting's CPU-quota 429);
        ``on_attempt`` / ``on_retry(status)``: called before each try / each wait (0: a transport error).
        """
        return send_with_retries(
            self,
            policy if policy is not None else self.retry_policy(),
            method,
            url,
            resource,
            headers=headers,
            bearer=True,
            fail_fast=fail_fast,
            answer=answer,
            on_attempt=on_attempt,
            on_retry=on_retry,
            **kwargs,
        )

    def pages(
        self,
        resource: str,
        params: Dict[str, str],
        follow: Follow = follow_next_link,
        fail_fast: AbstractSet[int] = frozenset(),
        recycle: bool = False,
    ) -> Iterator[Page]:
        """Every page of a listing. After each page ``follow`` names the next request: by default
        ``@odata.nextLink`` as an opaque URL; the collector restarts the filter instead where it can.

        The next page is fetched while the caller writes the current one (one request in flight,
        never more), so a backfill waits on Graph and on Splunk's pipe at the same time rather
        than in turn. Only the download runs on the prefetch thread: the page is parsed on the
        caller's, so that two threads never compete for the interpreter over CPU work. A caller
        that stops early costs at most that one prefetched page.

        ``recycle``: the caller is done with a page when it asks for the next one. Its ``items`` list
        is then emptied while the next page is parsed, so the next page reuses its memory
        (``odata.parse_collection`` says why that matters); its ``texts`` are left alone. With
        ``page_slots`` (a run over many tenants) both are emptied before the page's slot is given back
        instead: the memory is then reused by whichever tenant parses next.
        """
        response: Optional[requests.Response] = self._fetch_held(
            self.resource_url(resource), resource, params, fail_fast
        )
        spent: Optional[List[Any]] = None
        followed: set = set()  # the opaque nextLinks followed in this listing
        upcoming: Optional[Future[requests.Response]] = None  # holds a page slot until its page is taken
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-prefetch") as prefetch:
                while True:
                    # The page's slot (page_slots.py) was taken with its answer's headers; it is given back
                    # once the caller asks for the next page or stops.
                    try:
                        assert response is not None
                        page = self._parse_page(response, resource, spent)
                        response = None  # parsed: the body is not held while the next answer arrives
                        following = follow(page)
                        if following is not None and following[1] is None:
                            if following[0] in followed:
                                yield page  # its items are sound; only the way on is not
                                raise PagingLoop(
                                    f"Graph sent an @odata.nextLink for {resource} that this listing already "
                                    "followed (a paging loop); paging stopped, the cursor stays after the last page "
                                    "written.",
                                    resource=resource,
                                )
                            followed.add(following[0])
                        upcoming = (
                            prefetch.submit(self._fetch_held, following[0], resource, following[1], fail_fast)
                            if following is not None
                            else None
                        )
                        yield page
                        if recycle and self.page_slots is not None:
                            # Done with: let its memory go before its slot does, so a tenant waiting for
                            # its next answer holds no page (what the slots bound is what is held).
                            page.items.clear()
                            if page.texts is not None:
                                page.texts.clear()
                    finally:
                        response = None
                        self._give_slot_back()
                    if upcoming is None:
                        return
                    spent = page.items if recycle else None
                    taken, upcoming = upcoming, None
                    response = taken.result()
                    del taken  # the future would keep the body alive past the page's slot
        finally:
            # A caller that stopped early leaves a prefetched answer (finished: the pool waited for it).
            if upcoming is not None and upcoming.done() and upcoming.exception() is None:
                self._give_slot_back()

    def _fetch_held(
        self, url: str, resource: str, params: Optional[Dict[str, str]], fail_fast: AbstractSet[int]
    ) -> requests.Response:
        """``_fetch_page`` whose answer holds one of ``page_slots`` from its headers on (page_slots.py);
        the listing gives it back. On an error no slot is held."""
        if self.page_slots is None:
            return self._fetch_page(url, resource, params, fail_fast)
        mine = self._page_slot
        mine.wanted, mine.held = True, False
        try:
            response = self._fetch_page(url, resource, params, fail_fast)
        except BaseException:
            self._drop_held_slot()
            raise
        finally:
            mine.wanted = False
        if not mine.held:  # read without the headers hook (a session stand-in): taken now
            self.page_slots.acquire()
        mine.held = False  # the listing gives it back
        return response

    def _take_slot_before_body(self, response: requests.Response) -> None:
        mine = self._page_slot
        if response.status_code == 200 and not mine.held and self.page_slots is not None:
            self.page_slots.acquire()
            mine.held = True

    def _drop_held_slot(self) -> None:
        """A try that took a slot and then failed (its body cut, a timeout) gives it back before retrying."""
        mine = self._page_slot
        if getattr(mine, "held", False) and self.page_slots is not None:
            mine.held = False
            self.page_slots.release()

    def _give_slot_back(self) -> None:
        if self.page_slots is not None:
            self.page_slots.release()

    def _parse_page(self, response: requests.Response, resource: str, spent: Optional[List[Any]] = None) -> Page:
        bad: List[BadItem] = []
        try:
            # Item by item: one unreadable item is reported in ``bad``, not a refusal of the page.
            items, texts, next_link = parse_collection_bytes(response.content, spent, bad)
        except PageFormatError as exc:
            raise MalformedResponse(
                f"Graph answered {resource} with HTTP {response.status_code} but the body is not a JSON page "
                f"({len(response.content)} bytes: {exc}); the cursor stays where it was.",
                status=response.status_code,
                resource=resource,
            ) from None
        if next_link is not None and not isinstance(next_link, str):
            raise MalformedResponse(f"Graph sent a non-text @odata.nextLink for {resource}.", resource=resource)
        return Page(items, next_link or None, texts, bad)

    def _check_link(self, url: str, resource: str) -> None:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != (self._graph.scheme, self._graph.netloc.lower()):
            target = safe_text(f"{parts.scheme}://{parts.netloc}", 120)  # the link is remote text
            raise GraphError(
                f"{resource}: refusing to follow a link to {target}: it leaves the configured "
                f"Graph host {self._graph.scheme}://{self._graph.netloc} (or drops https); the cursor stays.",
                resource=resource,
            )

    # -- transport -------------------------------------------------------------------------
    def _remaining(self) -> Optional[float]:
        return None if self.deadline is None else self.deadline - self._clock()

    def _request_timeout(self) -> float:
        remaining = self._remaining()
        if remaining is None:
            return self.timeout
        return max(1.0, min(self.timeout, remaining + DEADLINE_GRACE_SECONDS))

    def _take_budget(self, resource: str) -> None:
        if self.budget is None:
            return
        refusal = (
            f"{resource}: the request budget has no room before the run's deadline; the cursor stays, "
            "the next run continues."
        )
        wait = wait_for_slot(self.budget, self._remaining(), self._sleep, refusal)
        if wait > 0:
            self.stats.budget_wait_seconds += wait
            self.log.debug("graph_budget_wait resource=%s wait_s=%.2f", resource, wait)

    def retry_policy(self) -> RetryPolicy:
        """How this client's retry loop waits: its sleep, clock, deadline (as set now) and retries."""
        return RetryPolicy(self._sleep, self._clock, self.deadline, self.max_retries, self._rng, self.log)

    def _send(self, method: str, url: str, resource: str, **kwargs: Any) -> requests.Response:
        """ONE try (``send_with_retries`` loops): a budget slot (Graph requests; token requests take
        none), then the exchange. After a reset, a timeout or a 503 the session's connections are
        closed, so the next try opens fresh ones (Graph asks for a new connection after a 503)."""
        if resource != "token":
            self._take_budget(resource)
        self.stats.requests += 1
        try:
            response = self._exchange(method, url, resource, **kwargs)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if isinstance(exc, ExchangeTimeout) and hasattr(self.session, "last_error"):
                # Raised here, not inside session.request: a recording session (the account check) learns it.
                self.session.last_error = exc
            self._fresh_connections()
            raise
        if response.status_code == 503:
            self._fresh_connections()
        return response

    def _exchange(self, method: str, url: str, resource: str, **kwargs: Any) -> requests.Response:
        """One request, its body read: within the exchange's total deadline and the body cap."""
        limit = self.exchange_timeout if self.exchange_timeout is not None else EXCHANGE_READS * self.timeout
        remaining = self._remaining()
        by_deadline = remaining is not None and remaining + DEADLINE_GRACE_SECONDS < limit
        if remaining is not None:
            limit = min(limit, remaining + DEADLINE_GRACE_SECONDS)
        if limit <= 0:
            raise DeadlineReached(
                f"{resource}: the run's deadline has passed; the cursor stays, the next run continues."
            )
        try:
            return bounded_exchange(
                self.session,
                method,
                url,
                read_timeout=self._request_timeout(),
                limit=limit,
                max_body=self.max_body,
                resource=resource,
                # A page's answer takes a slot; the token request made on the way to it does not.
                before_body=self._take_slot_before_body
                if resource != "token" and getattr(self._page_slot, "wanted", False)
                else None,
                **kwargs,
            )
        except BaseException as exc:
            self._drop_held_slot()
            if isinstance(exc, ExchangeTimeout) and by_deadline:
                raise DeadlineReached(
                    f"{resource}: the answer was not complete {DEADLINE_GRACE_SECONDS:.0f}s after the run's deadline "
                    "(a server sending very slowly); the cursor stays, the next run continues."
                ) from None
            raise

    def _fresh_connections(self) -> None:
        try:
            self.session.close()  # pools are rebuilt on the next request
        except Exception:  # noqa: S110 (closing is best effort)
            pass


@dataclass
class RetryPolicy:
    """How the retry loop waits: injected sleep and clock (tests), the run's deadline (a value of
    ``clock``; None: none), how many retries, and the jitter's random source."""

    sleep: Callable[[float], None]
    clock: Callable[[], float]
    deadline: Optional[float]
    max_retries: int
    rng: random.Random
    log: logging.Logger

    def pause(self, attempt: int, retry_after: Optional[str], resource: str, reason: str) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            # No advice from Graph: exponential back-off with jitter, never an immediate retry
            # (Graph keeps counting requests while it throttles).
            ceiling = min(60.0, 2.0 ** (attempt + 1))
            delay = self.rng.uniform(ceiling / 2, ceiling)
        remaining = None if self.deadline is None else self.deadline - self.clock()
        if remaining is not None and delay > remaining:
            raise DeadlineReached(
                f"{resource}: {reason}, and waiting {delay:.1f}s before retrying would pass the run's deadline "
                f"({max(remaining, 0.0):.1f}s left); the cursor stays, the next run continues."
            )
        self.log.warning(
            "graph_retry resource=%s reason=%s attempt=%d wait_s=%.2f", resource, reason, attempt + 1, delay
        )
        self.sleep(delay)


class _Attempts(Protocol):
    """What the retry loop needs of a client: one try (``_send``), the token, the counters."""

    stats: ClientStats
    account: str

    def token(self, force: bool = False) -> str: ...

    def _send(self, method: str, url: str, resource: str, **kwargs: Any) -> requests.Response: ...


def send_with_retries(
    client: _Attempts,
    policy: RetryPolicy,
    method: str,
    url: str,
    resource: str,
    headers: Optional[Mapping[str, str]] = None,
    bearer: bool = False,
    fail_fast: AbstractSet[int] = frozenset(),
    answer: Optional[Callable[[requests.Response], bool]] = None,
    on_attempt: Optional[Callable[[], None]] = None,
    on_retry: Optional[Callable[[int], None]] = None,
    **kwargs: Any,
) -> requests.Response:
    """The add-on's one retry loop, for token requests and Graph requests alike.

    429 and 5xx (but ``fail_fast`` statuses and answers ``answer`` claims), resets, timeouts and cut
    bodies are retried at most ``policy.max_retries`` times, each after ``policy.pause`` (Retry-After,
    else back-off with jitter; never past the deadline: ``DeadlineReached``), then ``TransientError``
    (``AuthError`` for the token endpoint). With ``bearer``, each try carries the client's token and a
    401 gets one fresh token and one more try (a token can expire or be revoked mid-run).
    """
    attempt = 0
    refreshed = False
    while True:
        sent = dict(kwargs)
        if bearer:
            sent["headers"] = {"Authorization": f"Bearer {client.token()}", **(headers or {})}
        elif headers is not None:
            sent["headers"] = dict(headers)
        if on_attempt is not None:
            on_attempt()
        try:
            response = client._send(method, url, resource=resource, **sent)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            reason = type(exc).__name__
            if attempt >= policy.max_retries:
                raise TransientError(
                    f"{resource}: {reason} after {attempt + 1} attempts; the cursor stays, next run continues.",
                    resource=resource,
                ) from None
            _count_retry(client, on_retry, 0)
            policy.pause(attempt, None, resource, reason)
            attempt += 1
            continue
        status = response.status_code
        if bearer and status == 401 and not refreshed:
            refreshed = True
            client.token(force=True)
            continue
        if status not in RETRYABLE_STATUS or status in fail_fast or (answer is not None and answer(response)):
            return response
        if status == 429:
            client.stats.throttled += 1
        if attempt >= policy.max_retries:
            if resource == "token":
                raise auth_error(status, _json_or_none(response), client.account)
            error = graph_error(status, _json_or_none(response), resource)
            raise TransientError(
                f"{error} (gave up after {attempt + 1} attempts; the cursor stays, next run continues)",
                status=status,
                code=error.code,
                resource=resource,
            )
        _count_retry(client, on_retry, status)
        policy.pause(attempt, response.headers.get("Retry-After"), resource, f"HTTP {status}")
        attempt += 1


def _count_retry(client: _Attempts, on_retry: Optional[Callable[[int], None]], status: int) -> None:
    client.stats.retries += 1
    if on_retry is not None:
        on_retry(status)


def _retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds: a number (Graph sends fractions such as 2.128) or an HTTP date."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: an error body nested too deep to read
        return None


__all__ = ["AuthError", "ClientSecret", "ConfigError", "DeadlineReached", "GraphClient", "Page"]
