"""Client-side request budget for the Graph security API: at most 150 requests a minute per app per tenant.

How the bound is kept (paste into the README)
---------------------------------------------

Microsoft documents a budget of about 150 requests per minute per application per tenant for the
Graph ``/security`` API. The add-on stays inside it on its own, before Graph has to answer 429:

* **What counts.** Every HTTP request to Graph counts, retries included (Graph counts throttled
  requests too). Token requests to Entra ID (login.microsoftonline.com and the national-cloud
  equivalents) do not: they are a different service with its own limits, and a token is reused
  for an hour.
* **Inputs that share an app registration and tenant divide the budget.** Each run of an input
  counts the enabled ``defender_alerts``, ``defender_incidents`` and ``defender_hunting`` inputs
  whose account has the same tenant id and client id (read from ``inputs.conf`` and the account
  configuration through splunkd), and takes an equal share: ``share = 150 / n`` requests a minute.
  For a customer tenant reached through an input's ``tenants`` field, ``n`` counts the inputs whose
  ``tenants`` select it (the counting lives on the Splunk side: ``defender_lineage_splunk/inputs.py``).
* **One input's share.** Every input runs in its own process, started again every ``interval``
  seconds (at least 60). A process draws from a token bucket that starts full with
  ``burst = max(1, share / 10)`` requests and refills at ``(share - 2 * burst) / 60`` requests a
  second. Within one process any 60 seconds hold at most ``burst + 60 * rate`` requests; a 60-second
  window that spans the end of one run and the start of the next holds at most
  ``2 * burst + 60 * rate = share`` requests. So the add-on as a whole sends at most
  ``n * share = 150`` requests to Graph in any minute, per app registration and tenant.
* **Inside one process** (several inputs of one account run by one process) the inputs share a
  single bucket, keyed by (client id, tenant id): a stricter bound, never a looser one.
* **Limits of the bound.** It holds for the inputs of one Splunk instance (a heavy forwarder): the
  same app registration used by another Splunk instance or another product for the same tenant is
  not counted. A saved account check on the Configuration page sends a few requests of its own.
  With more than 60 inputs on one app registration and tenant, each input still gets the minimum
  of one burst request and 0.5 requests a minute, which may exceed 150 in total.
* With one input per account, a backfill reads at most 120 pages a minute after its first 15:
  120,000 alert versions (1000 a page) or 6,000 incidents (50 a page) a minute.

``TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE`` (environment of splunkd) replaces 150: a test and
benchmark knob, not a setting; ``0`` turns the budget off.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Mapping, Optional, Tuple

from .errors import DefenderLineageError

GRAPH_SECURITY_REQUESTS_PER_MINUTE = 150.0
BUDGET_ENV = "TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE"


class DeadlineReached(DefenderLineageError):
    """A wait (budget, Retry-After, back-off) would end past the run's deadline: stop cleanly."""


class RequestBudget:
    """A token bucket: ``burst`` requests at once, then ``rate`` requests a second.

    ``acquire(max_wait)`` reserves one request and returns how long the caller must wait before
    sending it, or None (nothing reserved) when that wait would exceed ``max_wait``.
    The clock is injectable so tests never sleep.
    """

    def __init__(self, burst: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("a budget needs burst >= 1 and rate > 0")
        self.burst = float(burst)
        self.rate = float(rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()
        self.granted = 0
        self.waited = 0.0

    @classmethod
    def for_share(cls, per_minute: float, clock: Callable[[], float] = time.monotonic) -> RequestBudget:
        """The bucket for one input's share (see the module docstring for why it keeps the bound)."""
        burst = max(1.0, per_minute / 10.0)
        rate = max(per_minute - 2.0 * burst, 0.5) / 60.0
        return cls(burst, rate, clock)

    def per_minute_bound(self) -> float:
        """Most requests any 60 seconds can hold across two consecutive runs of one input."""
        return 2.0 * self.burst + 60.0 * self.rate

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def acquire(self, max_wait: Optional[float] = None) -> Optional[float]:
        with self._lock:
            now = self._clock()
            self._refill(now)
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate
            if max_wait is not None and wait > max_wait:
                return None
            # Borrow the token now: concurrent callers queue behind this one instead of racing for it.
            self._tokens -= 1.0
            self.granted += 1
            self.waited += wait
            return wait

    def reconfigure(self, burst: float, rate: float) -> None:
        """Tighten (never loosen) the bucket when another input of the same key asks for less."""
        with self._lock:
            self._refill(self._clock())
            self.burst = min(self.burst, float(burst))
            self.rate = min(self.rate, float(rate))
            self._tokens = min(self._tokens, self.burst)


_REGISTRY: Dict[Tuple[str, str], RequestBudget] = {}
_REGISTRY_LOCK = threading.Lock()


def wait_for_slot(
    budget: RequestBudget, remaining: Optional[float], sleep: Callable[[float], None], refusal: str
) -> float:
    """Takes a slot of ``budget``, sleeping until it is free; the seconds waited. ``DeadlineReached``
    (``refusal``) when no slot frees up within ``remaining`` seconds (None: no deadline)."""
    wait = budget.acquire(None if remaining is None else max(0.0, remaining))
    if wait is None:
        raise DeadlineReached(refusal)
    if wait > 0:
        sleep(wait)
    return wait


def shared_budget(
    client_id: str, tenant_id: str, per_minute: float, clock: Callable[[], float] = time.monotonic
) -> RequestBudget:
    """The process-wide bucket for one app registration in one tenant."""
    key = (client_id.strip().lower(), tenant_id.strip().lower())
    wanted = RequestBudget.for_share(per_minute, clock)
    with _REGISTRY_LOCK:
        found = _REGISTRY.get(key)
        if found is None:
            _REGISTRY[key] = wanted
            return wanted
    found.reconfigure(wanted.burst, wanted.rate)
    return found


def reset_registry() -> None:
    """Forget every bucket (tests)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


def per_minute_from_environment(environ: Mapping[str, str], name: str, default: float) -> Optional[float]:
    """A budget in requests a minute: ``default``, or the diagnostic override ``name``; None when
    the override turns it off (0 or less). An unreadable override keeps the default."""
    text = (environ.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return None if value <= 0 else value


def budget_per_minute(environ: Mapping[str, str]) -> Optional[float]:
    """The app-and-tenant budget: 150, or the diagnostic override; None when turned off."""
    return per_minute_from_environment(environ, BUDGET_ENV, GRAPH_SECURITY_REQUESTS_PER_MINUTE)


def input_share(per_minute: float, sharing_inputs: int) -> float:
    return per_minute / max(1, sharing_inputs)
