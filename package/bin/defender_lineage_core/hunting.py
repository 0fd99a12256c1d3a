"""Advanced hunting on a schedule: ``POST /v1.0/security/runHuntingQuery`` over time windows.

One run of one ``defender_hunting`` input reads the window from its checkpoint (minus an overlap)
to now, oldest first, and writes every result row once. Knows nothing of Splunk.

How it stays honest (paste into the README)
-------------------------------------------

* **Windows.** The checkpoint holds ``end``, the end of the last window whose rows are all
  written. A run asks for ``Timespan = <end - overlap>/<now>`` (``start/end`` in ISO 8601 UTC);
  a first run starts ``lookback`` (ISO 8601 duration, default ``P1D``) back. The overlap (300 s)
  catches rows that reach advanced hunting a few minutes after their ``Timestamp``.
* **Caps.** Graph returns at most 100,000 rows and 50 MB per query. A result whose row count
  reaches the row cap, whose body comes within 5 % of the size cap, or a 400 saying the result
  is too large, may be truncated: it is thrown away, the window is split in two halves and each
  half is asked for, recursively, until each fits. Nothing is written from a truncated answer,
  except from a window already as narrow as one second (then the run says so in a warning).
* **Execution timeout.** A query that runs past Graph's 3 minutes is answered with HTTP 504
  (``UnknownError``, empty message, as field reports show) or a 400 mentioning the time limit.
  Either splits the window the same way; it is not retried as it stands.
* **CPU quota.** A 429 whose message speaks of the CPU quota or resources is the tenant's
  15-minute CPU cycle, not the call rate: its reset time is read from the body (an ISO time, or
  "in N seconds"), else from ``Retry-After``, else a whole cycle (900 s) is assumed. The run
  waits for it, the window unchanged, when the wait ends before the run's deadline (its
  interval); otherwise it stops at once, keeps the window, and remembers the reset time in the
  checkpoint so the next run neither asks early nor waits past its own deadline. A 429 without
  such words is the call rate: retried by the Graph client's one retry loop as any 429 is
  (``Retry-After``, else back-off with jitter, at most five times, never past the deadline).
* **Rate.** Besides the app's ``/security`` budget (``budget.py``), every query takes a slot from a
  hunting budget of 30 calls a minute per tenant (Graph documents at least 45), divided between
  the enabled ``defender_hunting`` inputs of accounts in that tenant.
* **No ids: fingerprints.** Hunting rows have no stable id. A row's fingerprint is the first 128
  bits (32 hex digits) of the SHA-256 of its canonical JSON *after* type normalisation (keys
  sorted, no spaces, UTF-8; the added ``QueryName`` is not part of it). The checkpoint keeps the
  fingerprints of written rows whose ``Timestamp`` lies inside the overlap (and, mid-window, of
  every row written so far), so a row re-read in an overlap or a split is skipped, and a killed
  run repeats at most ``SAVE_EVERY_ROWS`` rows. Two rows identical in every column are one row.
* **Bad rows.** An answer with invalid UTF-8 bytes or a row nested too deep is read row by row
  (``odata.parse_results_bytes``): a row's invalid bytes become U+FFFD (one ``bad_rows`` warning per
  window), a row that cannot be read or is not an object is skipped (a ``bad_item`` warning each),
  both counted in ``run_summary``; the window is taken as usual. Only an unsound envelope is refused.
* **Types** follow the response ``schema``: booleans become JSON ``true``/``false`` whatever Graph
  sends (``1``/``0`` before 25 Feb 2026, ``True``/``False`` after, and Kusto's ``SByte`` type for
  bool); ints and longs become JSON integers, reals JSON numbers (NaN and infinities stay text),
  ``dynamic`` columns sent as JSON text become objects/arrays, datetimes, GUIDs, timespans and
  strings stay as Graph wrote them. ``_time`` is the row's ``Timestamp`` (else ``TimeGenerated``);
  a row without one (an aggregate) gets the end of its window.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from .budget import DeadlineReached, RequestBudget, per_minute_from_environment, wait_for_slot
from .errors import GraphError, MalformedResponse, graph_error, safe_id, safe_text
from .graph_client import GraphClient, RetryPolicy
from .odata import INVALID_UTF8, NOT_AN_OBJECT, BadItem, PageFormatError, parse_results_bytes
from .timestamps import TICKS_PER_SECOND, format_instant, parse_instant

RESOURCE = "runHuntingQuery"
STATE_VERSION = 1
MAX_ROWS = 100_000
MAX_BYTES = 50 * 1024 * 1024
SIZE_MARGIN = 0.95  # a body this close to the size cap may have been cut
DEFAULT_OVERLAP_SECONDS = 300
DEFAULT_LOOKBACK = "P1D"
MAX_LOOKBACK_DAYS = 30  # advanced hunting keeps 30 days
MIN_WINDOW_TICKS = TICKS_PER_SECOND  # a window is never split below one second
QUOTA_CYCLE_SECONDS = 900.0
# Retries of one query (429 call rate, 5xx, resets) in the client's retry loop, as for every Graph call.
MAX_RETRIES = 5
MAX_QUOTA_WAITS = 3
SAVE_EVERY_ROWS = 10_000
QUERY_NAME_FIELD = "QueryName"
# The advanced-hunting table the query reads, added to each row when the query names exactly one
# (``defenderlineage`` gives it as ``hunting_table``). KQL's tabular expression statement starts
# with the table name (``AlertInfo | where ...``); queries starting with ``let``, ``union``,
# ``search`` or another operator read tables the input cannot name, and get no field.
HUNTING_TABLE_FIELD = "HuntingTable"
_QUERY_TABLE = re.compile(r"\A\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\||;|\Z)")
_NOT_TABLES = frozenset(
    ("let", "union", "search", "find", "print", "range", "datatable", "externaldata", "evaluate", "set", "declare")
)
# Graph's limit on the KQL text is not documented for runHuntingQuery; the Defender portal and the
# retired advanced-hunting API accept queries of some tens of thousands of characters. The input
# refuses more than this (a query that long is almost certainly pasted data, not a query).
MAX_QUERY_CHARS = 30_000
HUNTING_BUDGET_ENV = "TA_DEFENDER_LINEAGE_HUNTING_PER_MINUTE"
HUNTING_CALLS_PER_MINUTE = 30.0
HUNTING_TIMEOUT_SECONDS = 200.0  # Graph stops a query at 3 minutes; leave it room to say so

_TIME_COLUMNS = ("Timestamp", "TimeGenerated")
_DURATION = re.compile(r"^P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")
_ISO_IN_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
_SECONDS_IN_TEXT = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec|second)", re.IGNORECASE)
_HMS_IN_TEXT = re.compile(r"\b(\d{1,2}):(\d{2}):(\d{2})\b")
_QUOTA_WORDS = re.compile(r"cpu|quota|resource", re.IGNORECASE)
_SIZE_WORDS = re.compile(r"(result|response|size|rows?).*(exceed|limit|too large)|(exceed|limit).*(size|rows?)", re.I)
_TIME_WORDS = re.compile(r"time ?out|timed out|execution time|took too long", re.IGNORECASE)


class HuntingError(GraphError):
    """Graph refused the query itself (bad KQL, unknown table or column): not worth a retry."""


# -- settings ------------------------------------------------------------------------------------


def parse_lookback(text: Optional[str]) -> int:
    """Seconds of an ISO 8601 duration such as ``PT1H``, ``P1D``, ``P1DT12H`` or ``P2W``; empty: ``P1D``.

    Raises ValueError with a message naming the field (at most 30 days: what advanced hunting keeps).
    """
    value = (text or "").strip().upper() or DEFAULT_LOOKBACK
    m = _DURATION.match(value)
    if not m or value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"lookback must be an ISO 8601 duration such as PT1H, P1D or P7D, not {text!r}.")
    weeks, days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    total = (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"lookback must be longer than zero, not {text!r}.")
    if total > MAX_LOOKBACK_DAYS * 86400:
        raise ValueError(
            f"lookback must be at most P{MAX_LOOKBACK_DAYS}D (advanced hunting keeps 30 days), not {text!r}."
        )
    return total


def query_table(query: str) -> str:
    """The table a KQL query reads when it starts with one (``AlertInfo | ...``), else ""."""
    match = _QUERY_TABLE.match(query)
    if match is None or match.group(1).lower() in _NOT_TABLES:
        return ""
    return match.group(1)


def check_query(query: Optional[str]) -> str:
    """The KQL text, stripped; ValueError when empty or longer than ``MAX_QUERY_CHARS``."""
    text = (query or "").strip()
    if not text:
        raise ValueError("query must not be empty: give the KQL of an advanced hunting query.")
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"query is {len(text)} characters long; at most {MAX_QUERY_CHARS} are accepted.")
    return text


def hunting_per_minute(environ: Mapping[str, str]) -> Optional[float]:
    """The per-tenant hunting budget: 30 calls a minute, or the diagnostic override; None when off."""
    return per_minute_from_environment(environ, HUNTING_BUDGET_ENV, HUNTING_CALLS_PER_MINUTE)


# -- windows ---------------------------------------------------------------------------------------


def format_timespan(start: int, end: int) -> str:
    """``start/end`` in ISO 8601 UTC; whole seconds without a fraction."""
    return f"{_iso(start)}/{_iso(end)}"


def _iso(ticks: int) -> str:
    text = format_instant(ticks)
    return text.replace(".0000000Z", "Z")


def plan_window(end: Optional[int], first_start: int, now: int, overlap_ticks: int) -> Optional[Tuple[int, int]]:
    """The window a run asks for: from the checkpoint minus the overlap (first run: ``first_start``)
    to now; None when there is nothing to ask (clock behind the checkpoint)."""
    start = first_start if end is None else end - overlap_ticks
    if now - start < MIN_WINDOW_TICKS:
        return None
    return start, now


def split_window(start: int, end: int) -> Optional[Tuple[Tuple[int, int], Tuple[int, int]]]:
    """Two halves, cut on a whole second when the window is wider than two seconds; None when the
    window is already as narrow as ``MIN_WINDOW_TICKS``."""
    if end - start <= MIN_WINDOW_TICKS:
        return None
    middle = start + (end - start) // 2
    if end - start > 2 * TICKS_PER_SECOND:
        middle -= middle % TICKS_PER_SECOND
    return (start, middle), (middle, end)


# -- rows ------------------------------------------------------------------------------------------

_BOOL_TYPES = {"boolean", "bool", "sbyte"}
_INT_TYPES = {"int", "int16", "int32", "int64", "long", "byte", "uint16", "uint32", "uint64", "short"}
_REAL_TYPES = {"double", "real", "single", "float", "decimal"}
_DYNAMIC_TYPES = {"object", "dynamic"}
_TRUE = {"1", "true", "t", "yes"}
_FALSE = {"0", "false", "f", "no"}


def column_types(schema: Any) -> Dict[str, str]:
    """Column name -> kind (bool, int, real, dynamic, text) from the response ``schema``
    (``name``/``type``, or ``Name``/``Type`` as one of Graph's examples spells them)."""
    kinds: Dict[str, str] = {}
    if not isinstance(schema, list):
        return kinds
    for column in schema:
        if not isinstance(column, dict):
            continue
        name = column.get("name", column.get("Name"))
        kind = column.get("type", column.get("Type"))
        if not isinstance(name, str) or not isinstance(kind, str):
            continue
        low = kind.strip().lower()
        low = low[len("system.") :] if low.startswith("system.") else low
        if low in _BOOL_TYPES:
            kinds[name] = "bool"
        elif low in _INT_TYPES:
            kinds[name] = "int"
        elif low in _REAL_TYPES:
            kinds[name] = "real"
        elif low in _DYNAMIC_TYPES:
            kinds[name] = "dynamic"
        else:
            kinds[name] = "text"
    return kinds


def normalise_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
        return value
    if kind == "int":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        return value
    if kind == "real":
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value
            return number if math.isfinite(number) else value
        return value
    if kind == "dynamic" and isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                return json.loads(text)
            except (ValueError, RecursionError):  # not JSON, or nested too deep to read: kept as text
                return value
    return value


def normalise_row(row: Mapping[str, Any], kinds: Mapping[str, str]) -> Dict[str, Any]:
    return {key: normalise_value(kinds.get(key, "text"), value) for key, value in row.items()}


def fingerprint(row: Mapping[str, Any]) -> str:
    """First 128 bits of SHA-256 over the row's canonical JSON (sorted keys, compact, UTF-8)."""
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def row_ticks(row: Mapping[str, Any]) -> Optional[int]:
    for column in _TIME_COLUMNS:
        ticks = parse_instant(row.get(column))
        if ticks is not None:
            return ticks
    return None


def read_answer(content: bytes) -> Tuple[List[Dict[str, Any]], Any, List[BadItem]]:
    """(rows, ``schema``, rows that could not be read as they came) of a 200 answer; MalformedResponse
    when the answer itself is not a JSON object with a ``results`` list.

    A sound answer is read whole. One that is not (invalid UTF-8 bytes, a row nested too deep) is read
    row by row, as a listing page is (odata.py): a row whose only fault is invalid bytes is kept with
    U+FFFD in their place (a ``BadItem`` with ``repaired`` and the row as ``item``), any other is left
    out; a result that is not an object is left out too. Only an unsound envelope refuses the answer."""
    bad: List[BadItem] = []
    try:
        body = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep to read
        try:
            read, envelope = parse_results_bytes(content, bad)
        except PageFormatError:
            raise MalformedResponse(
                f"Graph answered runHuntingQuery with HTTP 200 but the body is not JSON ({len(content)} bytes); "
                "the checkpoint stays.",
                status=200,
                resource=RESOURCE,
            ) from None
        return read, envelope.get("schema"), bad
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise MalformedResponse(
            "Graph answered runHuntingQuery with HTTP 200 but without a results list; the checkpoint stays.",
            status=200,
            resource=RESOURCE,
        )
    rows: List[Dict[str, Any]] = []
    for position, row in enumerate(results):
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(BadItem(position, NOT_AN_OBJECT, "", repaired=False))
    return rows, body.get("schema"), bad


# -- state -----------------------------------------------------------------------------------------


@dataclass
class HuntingState:
    tenant_id: str
    end: Optional[int] = None  # every row before end - overlap is written
    recent: Dict[str, int] = field(default_factory=dict)  # fingerprint -> the row's instant
    quota_until: Optional[int] = None  # the CPU quota is spent until then (wall-clock ticks)

    def to_json(self) -> Dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "tenant_id": self.tenant_id,
            "end": format_instant(self.end) if self.end is not None else None,
            "quota_until": format_instant(self.quota_until) if self.quota_until is not None else None,
            "recent": [[fp, ticks] for fp, ticks in sorted(self.recent.items())],
        }

    @classmethod
    def from_json(cls, data: Any, tenant_id: str) -> Optional[HuntingState]:
        if not isinstance(data, dict) or data.get("tenant_id") != tenant_id or data.get("v") != STATE_VERSION:
            return None
        recent: Dict[str, int] = {}
        for pair in data.get("recent") or []:
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str) and isinstance(pair[1], int):
                recent[pair[0]] = pair[1]
        return cls(tenant_id, parse_instant(data.get("end")), recent, parse_instant(data.get("quota_until")))

    def prune(self, floor: int) -> None:
        self.recent = {fp: t for fp, t in self.recent.items() if t >= floor}


@dataclass
class Row:
    item: Dict[str, Any]  # the normalised row plus QueryName
    ticks: Optional[int]  # _time: the row's Timestamp, or its window's end


@dataclass
class HuntingStats:
    rows: int = 0
    skipped: int = 0
    windows: int = 0  # windows answered in full
    splits: int = 0
    requests: int = 0  # runHuntingQuery calls
    quota_waits: int = 0
    quota_wait_seconds: float = 0.0
    rate_waits: int = 0
    timeouts: int = 0
    caps: int = 0
    truncated: int = 0  # one-second windows still over a cap (written as Graph sent them)
    bad_repaired: int = 0  # rows written with U+FFFD in place of invalid UTF-8 bytes
    bad_skipped: int = 0  # rows that could not be read (nested too deep, not JSON, not an object): left out
    stopped_early: bool = False
    quota_deferred: bool = False
    newest: Optional[int] = None


@dataclass
class _Answer:
    kind: str  # rows | split | quota
    rows: List[Dict[str, Any]] = field(default_factory=list)
    kinds: Dict[str, str] = field(default_factory=dict)
    wait: float = 0.0
    reason: str = ""
    bad: List[BadItem] = field(default_factory=list)  # rows not read as they came (read_answer)


# -- the run ---------------------------------------------------------------------------------------


class HuntingRun:
    """One run of one hunting input: plan, query, split, wait, de-duplicate, emit, save."""

    def __init__(
        self,
        client: GraphClient,
        query: str,
        name: str,
        state: HuntingState,
        emit: Callable[[List[Row]], None],
        save: Callable[[HuntingState], None],
        first_start: int,
        now: Callable[[], int],
        deadline: Optional[float] = None,
        overlap_seconds: int = DEFAULT_OVERLAP_SECONDS,
        budget: Optional[RequestBudget] = None,
        row_cap: int = MAX_ROWS,
        size_cap: int = MAX_BYTES,
        save_every: int = SAVE_EVERY_ROWS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        self.client = client
        self.query = query
        self.name = name
        self.table = query_table(query)
        self.state = state
        self.emit = emit
        self.save = save
        self.first_start = first_start
        self.now = now
        self.deadline = deadline
        self.overlap = overlap_seconds * TICKS_PER_SECOND
        self.budget = budget
        self.row_cap = row_cap
        self.size_cap = size_cap
        self.save_every = max(1, save_every)
        self._sleep = sleep
        self._clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.stats = HuntingStats()
        # How the client's retry loop waits for this run: its clock, sleep and deadline.
        self._retry_policy = RetryPolicy(sleep, clock, deadline, MAX_RETRIES, random.Random(), self.log)  # noqa: S311

    # ---------------------------------------------------------------- plan
    def run(self) -> HuntingStats:
        now = self.now()
        if self.state.quota_until is not None:
            wait = (self.state.quota_until - now) / TICKS_PER_SECOND
            if wait > 0 and not self._wait_quota(wait, "remembered from an earlier run"):
                return self.stats
            self.state.quota_until = None
            now = self.now()
        window = plan_window(self.state.end, self.first_start, now, self.overlap)
        if window is None:
            return self.stats
        pending: List[Tuple[int, int]] = [window]  # a stack: the oldest window on top
        try:
            while pending:
                start, end = pending.pop()
                answer = self._ask(start, end)
                if answer.kind == "split":
                    halves = split_window(start, end)
                    if halves is not None:
                        self.stats.splits += 1
                        self.log.info(
                            "hunting_split input=%s reason=%s window=%s halves=2",
                            self.name,
                            answer.reason,
                            format_timespan(start, end),
                        )
                        pending.append(halves[1])
                        pending.append(halves[0])
                        continue
                    if not answer.rows:
                        raise GraphError(
                            f"runHuntingQuery for input '{self.name}': {answer.reason} even for the one-second "
                            f"window {format_timespan(start, end)}; the checkpoint stays. Narrow the query.",
                            resource=RESOURCE,
                        )
                    self.stats.truncated += 1
                    self.log.warning(
                        "hunting_truncated input=%s window=%s rows=%d reason=%s: a one-second window still exceeds "
                        "Graph's limit; writing the rows Graph returned, the rest of this second is not available",
                        self.name,
                        format_timespan(start, end),
                        len(answer.rows),
                        answer.reason,
                    )
                self._take(answer.rows, answer.kinds, start, end, answer.bad)
        except DeadlineReached as exc:
            self.stats.stopped_early = True
            self.log.warning("run_deadline input=%s: %s", self.name, str(exc).rstrip("."))
        except _StopForQuota:
            pass
        return self.stats

    # ---------------------------------------------------------------- one window
    def _ask(self, start: int, end: int) -> _Answer:
        """The window's answer; a CPU-quota 429 is waited out (the window unchanged) or stops the run."""
        quota_waits = 0
        while True:
            answer = self._post(start, end)
            if answer.kind == "quota":
                quota_waits += 1
                self.state.quota_until = self.now() + int(answer.wait * TICKS_PER_SECOND)
                if quota_waits > MAX_QUOTA_WAITS or not self._wait_quota(answer.wait, answer.reason):
                    self.save(self.state)  # the reset time, for the next run
                    raise _StopForQuota()
                self.state.quota_until = None
                continue
            return answer

    def _post(self, start: int, end: int) -> _Answer:
        body = {"Query": self.query, "Timespan": format_timespan(start, end)}

        def before_each_try() -> None:
            self.stats.requests += 1
            self._take_hunting_budget()  # every try is a query against the tenant's quota

        def on_retry(status: int) -> None:
            if status == 429:
                self.stats.rate_waits += 1

        # The client's one retry loop (Retry-After, back-off, app budget, deadline, one fresh token on a
        # 401) with this run's clock; a 504 is a query past Graph's time limit (split, never retried as it
        # stands) and a CPU-quota 429 is answered to the run (it waits for the quota's reset, or stops).
        response = self.client.send_with_token(
            "POST",
            self.client.resource_url(RESOURCE),
            RESOURCE,
            {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"},
            on_attempt=before_each_try,
            policy=self._retry_policy,
            answer=_is_quota_answer,
            on_retry=on_retry,
            fail_fast=frozenset({504}),
            data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        )
        status = response.status_code
        content = response.content
        if status == 200:
            return self._rows(content, start, end)
        error = _json_or_none(content)
        message = _error_message(error)
        if status == 429:  # the CPU quota (_is_quota_answer): a call-rate 429 was retried by the client
            self.client.stats.throttled += 1
            wait = _quota_reset_seconds(message, response.headers.get("Retry-After"), self.now() / TICKS_PER_SECOND)
            return _Answer("quota", wait=wait, reason=f"CPU quota: {_short(message)}")
        if status in (504, 408) or (status == 400 and _TIME_WORDS.search(message)):
            self.stats.timeouts += 1
            return _Answer("split", reason=f"execution timeout (HTTP {status})")
        if status == 400 and _SIZE_WORDS.search(message):
            self.stats.caps += 1
            return _Answer("split", reason=f"result too large (HTTP 400: {_short(message, 120)})")
        if status == 400:
            code = safe_id(_error_code(error)) or "BadRequest"
            raise HuntingError(
                f"Graph refused the query of input '{self.name}' with HTTP 400 {code}: {_short(message)} "
                "(fix the KQL; the checkpoint stays).",
                status=400,
                code=code,
                resource=RESOURCE,
            )
        raise graph_error(status, error, RESOURCE)

    def _rows(self, content: bytes, start: int, end: int) -> _Answer:
        rows, schema, bad = read_answer(content)
        kinds = column_types(schema)
        if len(rows) >= self.row_cap:
            self.stats.caps += 1
            return _Answer("split", rows, kinds, reason=f"row cap ({len(rows)} rows)", bad=bad)
        if len(content) >= self.size_cap * SIZE_MARGIN:
            self.stats.caps += 1
            return _Answer("split", rows, kinds, reason=f"size cap ({len(content)} bytes)", bad=bad)
        return _Answer("rows", rows, kinds, bad=bad)

    # ---------------------------------------------------------------- writing
    def _take(
        self, rows: List[Dict[str, Any]], kinds: Mapping[str, str], start: int, end: int, bad: List[BadItem]
    ) -> None:
        batch: List[Row] = []
        repaired = {id(b.item) for b in bad if b.repaired}
        written_repaired = 0
        for raw in rows:
            row = normalise_row(raw, kinds)
            key = fingerprint(row)
            if key in self.state.recent:
                self.stats.skipped += 1
                continue
            if repaired and id(raw) in repaired:
                written_repaired += 1  # counted once: re-read in an overlap, it is a duplicate
            ticks = row_ticks(row)
            when = ticks if ticks is not None else end
            item = dict(row)
            item.setdefault(QUERY_NAME_FIELD, self.name)
            if self.table:
                item.setdefault(HUNTING_TABLE_FIELD, self.table)
            batch.append(Row(item, when))
            self.state.recent[key] = when
            if self.stats.newest is None or when > self.stats.newest:
                self.stats.newest = when
            if len(batch) >= self.save_every:
                self._flush(batch)  # a kill repeats at most this many rows
                batch = []
        self._flush(batch)
        self._report_bad_rows(bad, written_repaired, start, end)
        self.stats.windows += 1
        self.state.end = end if self.state.end is None else max(self.state.end, end)
        self.state.prune(self.state.end - self.overlap)
        self.save(self.state)

    def _report_bad_rows(self, bad: List[BadItem], written_repaired: int, start: int, end: int) -> None:
        """One warning for the rows written with U+FFFD (they have no id to name), one per row left out."""
        window = format_timespan(start, end)
        if written_repaired:
            self.stats.bad_repaired += written_repaired
            self.log.warning(
                "bad_rows input=%s window=%s rows=%d reason=%s: written with U+FFFD in place of their invalid bytes",
                self.name,
                window,
                written_repaired,
                INVALID_UTF8,
            )
        for skipped in bad:
            if skipped.repaired:
                continue
            self.stats.bad_skipped += 1
            self.log.warning(
                "bad_item resource=%s input=%s window=%s reason=%s position=%d: skipped; the rest of the answer "
                "is written",
                RESOURCE,
                self.name,
                window,
                skipped.reason,
                skipped.position,
            )

    def _flush(self, batch: List[Row]) -> None:
        if not batch:
            return
        self.emit(batch)
        self.stats.rows += len(batch)
        self.save(self.state)

    # ---------------------------------------------------------------- waiting
    def _remaining(self) -> Optional[float]:
        return None if self.deadline is None else self.deadline - self._clock()

    def _wait_quota(self, wait: float, reason: str) -> bool:
        """Wait out the CPU quota if that ends before the deadline; False (and say so) otherwise."""
        remaining = self._remaining()
        if remaining is not None and wait > remaining:
            self.stats.stopped_early = True
            self.stats.quota_deferred = True
            self.log.warning(
                'hunting_quota input=%s wait_s=%.1f remaining_s=%.1f action=stop reason="%s": the CPU quota resets '
                "after this run's deadline; the window is kept for the next run",
                self.name,
                wait,
                max(remaining, 0.0),
                reason,
            )
            return False
        self.stats.quota_waits += 1
        self.stats.quota_wait_seconds += wait
        self.log.warning(
            'hunting_quota input=%s wait_s=%.1f action=wait reason="%s": waiting for the CPU quota to reset',
            self.name,
            wait,
            reason,
        )
        self._sleep(max(0.0, wait))
        return True

    def _take_hunting_budget(self) -> None:
        if self.budget is None:
            return
        refusal = (
            "the hunting budget has no room before the run's deadline; the checkpoint stays, the next run continues."
        )
        wait_for_slot(self.budget, self._remaining(), self._sleep, refusal)


class _StopForQuota(Exception):
    pass


# -- error bodies ----------------------------------------------------------------------------------


def _json_or_none(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return None


def _is_quota_answer(response: Any) -> bool:
    """A 429 whose message speaks of the CPU quota: the tenant's 15-minute cycle, not the call rate."""
    return response.status_code == 429 and bool(_QUOTA_WORDS.search(_error_message(_json_or_none(response.content))))


def _error_message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        return message if isinstance(message, str) else ""
    return ""


def _error_code(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else ""
    return ""


def _short(text: str, limit: int = 300) -> str:
    # Graph's message comes from a remote body: escaped, tokens redacted, truncated (errors.safe_text).
    return safe_text(text, limit)


def _seconds(value: Optional[str]) -> Optional[float]:
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _quota_reset_seconds(message: str, retry_after: Optional[str], wall_now: float) -> float:
    """Seconds until the CPU quota resets: an ISO time in the message, else "in N seconds" or
    ``hh:mm:ss`` in it, else ``Retry-After``, else a whole 15-minute cycle."""
    for match in _ISO_IN_TEXT.finditer(message):
        ticks = parse_instant(match.group(0))
        if ticks is not None:
            return max(0.0, ticks / TICKS_PER_SECOND - wall_now)
    seconds = _SECONDS_IN_TEXT.search(message)
    if seconds:
        return float(seconds.group(1))
    hms = _HMS_IN_TEXT.search(message)
    if hms:
        return float(int(hms.group(1)) * 3600 + int(hms.group(2)) * 60 + int(hms.group(3)))
    header = _seconds(retry_after)
    if header is not None:
        return header
    return QUOTA_CYCLE_SECONDS
