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
  bad_rows        a runHuntingQuery answer (HTTP 200) whose first `bad_rows` rows carry the invalid
                  UTF-8 bytes `bad_bytes` at the end of `bad_column` (its last text column when the
                  row has none), and whose next `unreadable_rows` rows are replaced by a row nested
                  100,000 levels deep (no parser reads it whole); the rest as generated
`delay` also applies before any other kind.

Transport kinds (hostile or broken servers; see ``transport_body`` and the builders below):
  trickle         the normal response with its true Content-Length, the body sent `trickle_rate`
                  bytes a second (1 by default) until done or the client hangs up
  trickle_head    the same, the status line and headers trickled too
  gzip_bomb       HTTP 200, `Content-Encoding: gzip`, a small body inflating to `bomb_bytes` (1 GiB
                  by default) of JSON whitespace
  self_link       the normal response, its `@odata.nextLink` set to the request's own URL (added
                  when the page had none): a paging loop
  token_expires   the normal token answer with `expires_in` replaced by the JSON text `expires_in`
                  (`"soon"`, `-60`, `NaN`, `0` ...), or removed when that is None
  html            HTTP 200 with a `text/html` sign-in page instead of JSON (a captive portal)
A hostile error body (newlines, a forged log line, JWT-looking strings) is a `status` fault with
`body=hostile_graph_error()` or `body=hostile_entra_error()`.
"""

from __future__ import annotations

import functools
import json
import re
import threading
import zlib
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

KINDS = (
    "status",
    "malformed_json",
    "truncate",
    "reset",
    "delay",
    "expire_tokens",
    "call",
    "foreign_link",
    "bad_rows",
    *("trickle", "trickle_head", "gzip_bomb", "self_link", "token_expires", "html"),  # transport kinds
)
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
        trickle_rate: float = 1.0,
        bomb_bytes: int = 1 << 30,
        expires_in: Optional[str] = None,
        bad_rows: int = 0,
        unreadable_rows: int = 0,
        bad_bytes: bytes = b"\xff\xfe",
        bad_column: str = "Title",
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
        # transport kinds
        self.trickle_rate = trickle_rate
        self.bomb_bytes = bomb_bytes
        self.expires_in = expires_in
        # bad_rows
        self.bad_rows = bad_rows
        self.unreadable_rows = unreadable_rows
        self.bad_bytes = bad_bytes
        self.bad_column = bad_column
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


# -- transport kinds: bodies ------------------------------------------------------------------------

HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in to continue</title></head><body><h1>Network login</h1>"
    b"<p>Your session has expired. Please sign in to the corporate network.</p></body></html>"
)
# A JWT-shaped string (header {"alg":"none"}), and a line that, echoed raw into a log, would read as a
# successful run of the input.
FAKE_JWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzdGVhbC1tZSJ9.c2lnbmF0dXJlLXRoYXQtbXVzdC1ub3QtbGVhaw"
FORGED_LINE = "\n2026-01-01 00:00:00,000 INFO pid=1 run_summary input=defender_alerts://f status=ok events=0\r\n"


def hostile_graph_error(code: str = "BadRequest") -> Dict[str, Any]:
    """A Graph error body whose message tries to forge a log line and reflect a token."""
    return {
        "error": {
            "code": code,
            "message": f"Denied.{FORGED_LINE}Authorization: Bearer {FAKE_JWT} \x1b[2J\u2028echo",
            "innerError": {"request-id": "6b8e3f1a-0d9c-4e7b-9a52-1c3d4e5f6a7b", "date": "2026-01-01T00:00:00"},
        }
    }


def hostile_entra_error(aadsts: int = 7000215) -> Dict[str, Any]:
    """An Entra error body with the same payload in ``error`` and ``error_description``."""
    return {
        "error": f"invalid_client{FORGED_LINE}",
        "error_description": f"AADSTS{aadsts}: Invalid client secret.{FORGED_LINE}id_token={FAKE_JWT}",
        "error_codes": [aadsts],
        "trace_id": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "correlation_id": f"x{FORGED_LINE}",
    }


@functools.lru_cache(maxsize=2)
def gzip_bomb(size: int) -> bytes:
    """A gzip stream inflating to ``size`` bytes of spaces (about 1 MB per GiB)."""
    block = b" " * (1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = []
    for _ in range(size // len(block)):
        parts.append(packer.compress(block))
    parts.append(packer.compress(b" " * (size % len(block))))
    parts.append(packer.flush())
    return b"".join(parts)


def with_next_link(body: bytes, link: str) -> bytes:
    """A Graph page whose ``@odata.nextLink`` is ``link`` (replaced, or added before the closing brace)."""
    value = json_string(link)
    pattern = re.compile(rb'"@odata\.nextLink":"(?:[^"\\]|\\.)*"')
    if pattern.search(body):
        return pattern.sub(lambda _: b'"@odata.nextLink":' + value, body, count=1)
    end = body.rstrip().rfind(b"}")
    return body[:end] + b',"@odata.nextLink":' + value + body[end:]


def with_expires_in(body: bytes, expires_in: Optional[str]) -> bytes:
    """A token answer with ``expires_in`` replaced by the raw JSON text given, or removed (None)."""
    answer = json.loads(body)
    answer.pop("expires_in", None)
    text = json.dumps(answer)
    return (text[:-1] + f', "expires_in": {expires_in}}}' if expires_in is not None else text).encode()


def json_string(text: str) -> bytes:
    return json.dumps(text).encode()


UNREADABLE_DEPTH = 100_000


def with_bad_rows(body: bytes, rule: FaultRule) -> bytes:
    """A hunting answer with invalid bytes in its first rows and unreadable rows after them (``bad_rows``)."""
    answer = json.loads(body)
    results = answer.pop("results")
    head = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode("utf-8")[:-1]
    texts: List[bytes] = []
    for number, row in enumerate(results):
        if number < rule.bad_rows:
            texts.append(_row_with_bytes(row, rule.bad_column, rule.bad_bytes))
        elif number < rule.bad_rows + rule.unreadable_rows:
            texts.append(b'{"Deep":' + b"[" * UNREADABLE_DEPTH + b"]" * UNREADABLE_DEPTH + b"}")
        else:
            texts.append(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
    return head + b',"results":[' + b",".join(texts) + b"]}"


def _row_with_bytes(row: Dict[str, Any], column: str, raw: bytes) -> bytes:
    if not isinstance(row.get(column), str):
        column = [k for k, v in row.items() if isinstance(v, str)][-1]
    marker = "\u0000BAD-BYTES\u0000"
    text = json.dumps({**row, column: row[column] + marker}, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8").replace(json.dumps(marker)[1:-1].encode(), raw)
