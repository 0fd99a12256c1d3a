"""Fault injection: rules matched per request, consumed atomically, switchable per test.

A rule matches a request by resource ("token", "alerts_v2", "incidents", "runHuntingQuery", "graph"
= any Graph resource, None/"*" = anything), optional method, path regex, effective query options (a
`$skiptoken` page is matched on the options it continues, so `when_query={"$expand": "alerts"}`
also hits later pages), headers, global request index, an arbitrary predicate, and counters
(`after` matching requests pass first; then it fires `times` times, None = forever).

Kinds:
  status          respond with `status` and a Graph- or Entra-shaped error (429 gets Retry-After)
  malformed_json  the normal response, body cut in half (valid HTTP, invalid JSON)
  truncate        the normal response headers, then half the body and the connection closes
  reset           close the connection with a TCP RST, no response
  delay           sleep `delay` seconds, then respond normally
  expire_tokens   invalidate every issued token, then handle the request (so: 401 on Graph)
  call            run `action(sim, ctx)` (e.g. `sim.tenant.add_version(...)`: an update arriving
                  while a listing is paged), then handle the request normally
  foreign_link    the normal response, its `@odata.nextLink` pointing at `link_base` instead of the
                  simulator (another host, or https dropped)
`delay` also applies before any other kind.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

KINDS = ("status", "malformed_json", "truncate", "reset", "delay", "expire_tokens", "call", "foreign_link")
RESOURCES = ("token", "alerts_v2", "incidents", "runHuntingQuery", "graph", "other", "*")


class FaultContext:
    """What a rule can match on."""

    __slots__ = ("headers", "index", "method", "path", "query", "resource")

    def __init__(
        self,
        index: int,
        method: str,
        path: str,
        resource: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
    ) -> None:
        self.index = index  # 0-based number of the request since the simulator started
        self.method = method
        self.path = path
        self.resource = resource  # token | alerts_v2 | incidents | other
        self.query = query  # effective query options (skiptoken state merged in)
        self.headers = headers  # lower-cased names


class FaultRule:
    def __init__(
        self,
        kind: str,
        status: Optional[int] = None,
        resource: Optional[str] = None,
        method: Optional[str] = None,
        path: Optional[str] = None,
        when_query: Optional[Mapping[str, Optional[str]]] = None,
        when_header: Optional[Mapping[str, Optional[str]]] = None,
        index: Optional[int] = None,
        after: int = 0,
        times: Optional[int] = 1,
        retry_after: Optional[str] = None,
        delay: float = 0.0,
        body: Union[bytes, Dict[str, Any], None] = None,
        headers: Optional[Mapping[str, str]] = None,
        code: Optional[str] = None,
        message: Optional[str] = None,
        predicate: Optional[Callable[[FaultContext], bool]] = None,
        action: Optional[Callable[[Any, FaultContext], None]] = None,
        link_base: Optional[str] = None,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {KINDS}")
        if kind == "status" and status is None:
            raise ValueError("a status fault needs status=")
        if kind == "call" and action is None:
            raise ValueError("a call fault needs action=")
        if kind == "foreign_link" and not link_base:
            raise ValueError("a foreign_link fault needs link_base=")
        if resource is not None and resource not in RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; expected one of {RESOURCES}")
        self.kind = kind
        self.status = status
        self.resource = resource
        self.method = method.upper() if method else None
        self.path = re.compile(path) if path else None
        self.when_query = dict(when_query or {})
        self.when_header = {k.lower(): v for k, v in (when_header or {}).items()}
        self.index = index
        self.after = after
        self.times = times
        self.retry_after = retry_after
        self.delay = delay
        self.body = body
        self.headers = dict(headers or {})
        self.code = code
        self.message = message
        self.predicate = predicate
        self.action = action
        self.link_base = link_base
        self.seen = 0  # matching requests so far
        self.fired = 0  # times applied

    def matches(self, ctx: FaultContext) -> bool:
        if self.resource not in (None, "*"):
            if self.resource == "graph":
                if ctx.resource not in ("alerts_v2", "incidents", "runHuntingQuery"):
                    return False
            elif ctx.resource != self.resource:
                return False
        if self.method and ctx.method != self.method:
            return False
        if self.path and not self.path.search(ctx.path):
            return False
        if self.index is not None and ctx.index != self.index:
            return False
        for key, want in self.when_query.items():
            if key not in ctx.query or (want is not None and ctx.query[key] != want):
                return False
        for key, want in self.when_header.items():
            if key not in ctx.headers or (want is not None and ctx.headers[key] != want):
                return False
        return self.predicate is None or self.predicate(ctx)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def __repr__(self) -> str:
        return (
            f"FaultRule(kind={self.kind!r}, status={self.status}, resource={self.resource!r}, "
            f"times={self.times}, fired={self.fired})"
        )


class FaultPlan:
    """Ordered fault rules; the first live matching rule fires (at most one per request)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.rules: List[FaultRule] = []
        self.log: List[Tuple[int, FaultRule]] = []  # (request index, rule) for every fired fault

    def add(
        self,
        status: Optional[int] = None,
        kind: Optional[str] = None,
        resource: Optional[str] = None,
        **options: Any,
    ) -> FaultRule:
        """Add a rule. kind defaults to "status" when status is given. See the module docstring."""
        if kind is None:
            if status is None:
                raise ValueError("give status= or kind=")
            kind = "status"
        rule = FaultRule(kind, status=status, resource=resource, **options)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def remove(self, rule: FaultRule) -> None:
        with self._lock:
            self.rules.remove(rule)

    def __len__(self) -> int:
        return len(self.rules)

    def __bool__(self) -> bool:
        return True  # an empty plan is still a plan (so `if sim.faults:` is not misleading)

    def match(self, ctx: FaultContext) -> Optional[FaultRule]:
        """Find, count and consume the rule for this request (atomically)."""
        with self._lock:
            for rule in self.rules:
                if rule.exhausted or not rule.matches(ctx):
                    continue
                rule.seen += 1
                if rule.seen <= rule.after:
                    continue
                rule.fired += 1
                self.log.append((ctx.index, rule))
                return rule
        return None

    def fired(self) -> int:
        return len(self.log)
