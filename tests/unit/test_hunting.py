"""Advanced hunting core: window planning, splitting, fingerprints, types, overlap, quota and errors,
against an in-memory runHuntingQuery (no HTTP)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from defender_lineage_core import hunting
from defender_lineage_core.budget import DeadlineReached
from defender_lineage_core.errors import GraphError, TransientError
from defender_lineage_core.graph_client import ClientStats, GraphClient
from defender_lineage_core.hunting import (
    MIN_WINDOW_TICKS,
    HuntingError,
    HuntingRun,
    HuntingState,
    Row,
    check_query,
    column_types,
    fingerprint,
    format_timespan,
    hunting_per_minute,
    normalise_row,
    parse_lookback,
    plan_window,
    split_window,
)
from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, parse_instant
from defender_lineage_splunk.inputs import count_hunting_inputs

ROOT = Path(__file__).resolve().parents[2]
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
T0 = parse_instant("2026-11-20T00:00:00Z") or 0
S = TICKS_PER_SECOND
SCHEMA = [
    {"name": "Timestamp", "type": "DateTime"},
    {"name": "DeviceName", "type": "String"},
    {"name": "N", "type": "Int64"},
    {"name": "Flag", "type": "Boolean"},
]


class Response:
    def __init__(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        self.status_code = status
        self.content = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}


def error(status: int, code: str, message: str) -> Dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "x"}}}


class FakeHunting:
    """runHuntingQuery over ``rows`` (start inclusive, end exclusive), with caps and scripted answers."""

    def __init__(self, rows: List[Dict[str, Any]], row_cap: int = 10**9, size_cap: int = 10**12) -> None:
        self.rows = rows
        self.row_cap = row_cap
        self.size_cap = size_cap
        self.script: List[Callable[[Tuple[int, int]], Optional[Response]]] = []
        self.calls: List[Tuple[int, int]] = []
        self.stats = ClientStats()
        self.booleans = "words"
        self.always: Optional[Callable[[Tuple[int, int]], Optional[Response]]] = None
        self.refreshed = 0  # tokens forced fresh

    # the GraphClient surface HuntingRun uses
    def token(self, force: bool = False) -> str:
        self.refreshed += int(force)
        return "t"

    def resource_url(self, resource: str) -> str:
        return f"https://graph.test/v1.0/security/{resource}"

    # The real token handling (one fresh token on a 401) over this fake's _send.
    send_with_token = GraphClient.send_with_token

    def _send(self, method: str, url: str, resource: str, **kwargs: Any) -> Response:
        body = json.loads(kwargs["data"])
        start_text, end_text = body["Timespan"].split("/")
        window = (parse_instant(start_text) or 0, parse_instant(end_text) or 0)
        self.calls.append(window)
        self.stats.requests += 1
        answer = self.always(window) if self.always is not None else None
        if answer is None and self.script:
            answer = self.script.pop(0)(window)  # scripted answers are used once each
        if answer is not None:
            return answer
        inside = [r for r in self.rows if window[0] <= (parse_instant(r["Timestamp"]) or 0) < window[1]]
        out = []
        for r in inside[: self.row_cap]:
            r = dict(r)
            if "Flag" in r and self.booleans == "numbers":
                r["Flag"] = int(r["Flag"])
            out.append(r)
        content = json.dumps({"schema": SCHEMA, "results": out}).encode()
        if len(content) > self.size_cap:
            content = content[: self.size_cap]  # never valid: the run must split before reading it
            keep = []
            size = 40
            for r in out:
                size += len(json.dumps(r)) + 1
                if size > self.size_cap:
                    break
                keep.append(r)
            content = json.dumps({"schema": SCHEMA, "results": keep}).encode()
        return Response(200, content)


def make_rows(n: int, start: int = T0, step: int = 10 * S) -> List[Dict[str, Any]]:
    return [
        {"Timestamp": format_instant(start + i * step), "DeviceName": f"pc{i % 7}", "N": i, "Flag": i % 3 == 0}
        for i in range(n)
    ]


class Harness:
    def __init__(self, graph: FakeHunting, now: int, state: Optional[HuntingState] = None, **options: Any) -> None:
        self.graph = graph
        self.now = now
        self.state = state or HuntingState(TENANT)
        self.saved: List[Dict[str, Any]] = []
        self.written: List[Row] = []
        self.slept: List[float] = []
        self.clock = 0.0
        self.options = options

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.clock += seconds
        self.now += int(seconds * S)

    def run(self, deadline: Optional[float] = None, first_start: Optional[int] = None) -> HuntingRun:
        run = HuntingRun(
            self.graph,  # type: ignore[arg-type]
            "DeviceProcessEvents",
            "dpe",
            self.state,
            self.written.extend,
            lambda st: self.saved.append(st.to_json()),
            first_start=T0 - S if first_start is None else first_start,
            now=lambda: self.now,
            deadline=deadline,
            sleep=self.sleep,
            clock=lambda: self.clock,
            **self.options,
        )
        run.run()
        return run

    def counts(self) -> Counter:
        return Counter(r.item["N"] for r in self.written)


# ---- settings ------------------------------------------------------------------------------------


def test_lookback_durations():
    assert parse_lookback("PT1H") == 3600
    assert parse_lookback("p1d") == 86400
    assert parse_lookback("") == 86400  # the default, P1D
    assert parse_lookback("P1DT12H") == 129600
    assert parse_lookback("P2W") == 14 * 86400
    for bad in ("1d", "P", "PT", "P31D", "PT0S", "P1H", "yesterday"):
        with pytest.raises(ValueError, match="lookback"):
            parse_lookback(bad)


def test_query_must_be_present_and_not_too_long():
    assert check_query("  AlertInfo \n") == "AlertInfo"
    with pytest.raises(ValueError, match="empty"):
        check_query(" \n ")
    with pytest.raises(ValueError, match="at most 30000"):
        check_query("AlertInfo | where " + "x" * 30000)


def test_hunting_budget_and_sharing_inputs():
    assert hunting_per_minute({}) == 30.0
    assert hunting_per_minute({"TA_DEFENDER_LINEAGE_HUNTING_PER_MINUTE": "0"}) is None
    accounts = {"a": {"tenant_id": TENANT.upper()}, "b": {"tenant_id": TENANT}, "c": {"tenant_id": "other"}}
    stanzas = {
        "defender_hunting://x": {"account": "a"},
        "defender_hunting://y": {"account": "b"},  # another app registration, same tenant: counts
        "defender_hunting://z": {"account": "c"},
        "defender_hunting://off": {"account": "a", "disabled": "1"},
        "defender_alerts://al": {"account": "a"},
    }
    assert count_hunting_inputs(stanzas, accounts, TENANT, "defender_hunting://x") == 2
    assert count_hunting_inputs({}, accounts, TENANT, "defender_hunting://new") == 1


# ---- windows -------------------------------------------------------------------------------------


def test_window_planning_from_checkpoint_minus_overlap_to_now():
    now = T0 + 3600 * S
    assert plan_window(None, T0, now, 300 * S) == (T0, now)  # first run: the lookback
    assert plan_window(T0 + 1800 * S, T0, now, 300 * S) == (T0 + 1500 * S, now)
    assert plan_window(now + 10 * S, T0, now, 0) is None  # a clock behind the checkpoint asks nothing


def test_split_on_whole_seconds_down_to_one_second():
    first, second = split_window(T0, T0 + 3601 * S + 5) or ((0, 0), (0, 0))
    assert first[0] == T0 and first[1] == second[0] and second[1] == T0 + 3601 * S + 5
    assert first[1] % S == 0
    assert split_window(T0, T0 + MIN_WINDOW_TICKS) is None
    halves = split_window(T0, T0 + 2 * S)
    assert halves == ((T0, T0 + S), (T0 + S, T0 + 2 * S))


def test_timespan_is_start_slash_end_in_utc():
    assert format_timespan(T0, T0 + 90 * S) == "2026-11-20T00:00:00Z/2026-11-20T00:01:30Z"
    assert format_timespan(T0 + 5, T0 + S) == "2026-11-20T00:00:00.0000005Z/2026-11-20T00:00:01Z"


# ---- types and fingerprints ------------------------------------------------------------------------


def test_booleans_from_numbers_words_and_sbyte_become_json_true_false():
    kinds = column_types(
        [
            {"name": "A", "type": "Boolean"},
            {"Name": "B", "Type": "SByte"},  # Kusto's CLR type for bool; capitalised keys as one doc shows
            {"name": "C", "type": "System.Boolean"},
            {"name": "I", "type": "Int32"},
            {"name": "L", "type": "Int64"},
            {"name": "R", "type": "Double"},
            {"name": "D", "type": "Object"},
            {"name": "T", "type": "DateTime"},
        ]
    )
    assert kinds == {"A": "bool", "B": "bool", "C": "bool", "I": "int", "L": "int", "R": "real", "D": "dynamic"} | {
        "T": "text"
    }
    before = normalise_row({"A": 1, "B": "0", "C": None, "I": "42", "L": 7.0, "R": "0.5", "D": '{"x":[1]}'}, kinds)
    after = normalise_row({"A": True, "B": False, "C": None, "I": 42, "L": 7, "R": 0.5, "D": {"x": [1]}}, kinds)
    text = normalise_row({"A": "True", "B": "False", "C": None, "I": 42, "L": 7, "R": 0.5, "D": {"x": [1]}}, kinds)
    assert before == after == text == {"A": True, "B": False, "C": None, "I": 42, "L": 7, "R": 0.5, "D": {"x": [1]}}
    assert fingerprint(before) == fingerprint(after)
    # Values that are not what the type says are kept as Graph sent them.
    odd = normalise_row({"A": "maybe", "I": "4.5", "R": "NaN", "D": "not json", "T": "2026-11-20T00:00:00Z"}, kinds)
    assert odd == {"A": "maybe", "I": "4.5", "R": "NaN", "D": "not json", "T": "2026-11-20T00:00:00Z"}


def test_fingerprint_is_sha256_of_canonical_json_and_ignores_key_order():
    import hashlib

    row = {"b": 1, "a": "é", "c": [True, None]}
    expected = hashlib.sha256(b'{"a":"\xc3\xa9","b":1,"c":[true,null]}').hexdigest()[:32]
    assert fingerprint(row) == expected
    assert fingerprint({"c": [True, None], "a": "é", "b": 1}) == expected
    assert fingerprint({**row, "b": 2}) != expected


def test_state_round_trip_and_tenant_check():
    state = HuntingState(TENANT, T0, {"f" * 32: T0 - 5}, T0 + 9)
    data = json.loads(json.dumps(state.to_json()))
    assert HuntingState.from_json(data, TENANT) == state
    assert HuntingState.from_json(data, "other-tenant") is None
    assert HuntingState.from_json({"v": 99, "tenant_id": TENANT}, TENANT) is None


# ---- runs ----------------------------------------------------------------------------------------


def test_row_cap_splits_the_window_until_each_half_fits_nothing_lost_nothing_repeated():
    rows = make_rows(1000)  # one every 10 s from T0: 10,000 s
    graph = FakeHunting(rows, row_cap=120)
    h = Harness(graph, now=T0 + 10_000 * S, row_cap=120)
    run = h.run()
    assert h.counts() == Counter(range(1000))
    assert max(h.counts().values()) == 1
    assert run.stats.splits > 0 and run.stats.caps == run.stats.splits
    assert run.stats.windows == run.stats.splits + 1
    assert h.state.end == T0 + 10_000 * S
    # Answers at the cap were thrown away, never written: every written window held fewer rows.
    assert all(r.ticks is not None for r in h.written)


def test_rows_on_a_split_boundary_are_written_once_even_if_graph_includes_both_ends():
    rows = make_rows(64, step=S)  # one a second: many rows sit exactly on a cut
    graph = FakeHunting(rows, row_cap=10)
    original = graph._send

    def inclusive(method: str, url: str, resource: str, **kwargs: Any) -> Response:
        body = json.loads(kwargs["data"])
        start, end = body["Timespan"].split("/")
        widened = f"{start}/{format_instant((parse_instant(end) or 0) + 1)}"  # end inclusive
        kwargs["data"] = json.dumps({**body, "Timespan": widened}).encode()
        return original(method, url, resource, **kwargs)

    graph._send = inclusive  # type: ignore[method-assign]
    h = Harness(graph, now=T0 + 64 * S, row_cap=10)
    h.run()
    assert h.counts() == Counter(range(64))


def test_size_cap_splits_the_window():
    rows = make_rows(400)
    one = len(json.dumps(rows[0]))
    graph = FakeHunting(rows, size_cap=60 * one)
    h = Harness(graph, now=T0 + 4000 * S, size_cap=60 * one)
    run = h.run()
    assert h.counts() == Counter(range(400))
    assert run.stats.splits > 0


def test_execution_timeout_splits_the_window():
    rows = make_rows(300)
    graph = FakeHunting(rows)
    wide = 1000 * S

    def timeout_when_wide(window: Tuple[int, int]) -> Optional[Response]:
        if window[1] - window[0] > wide:
            return Response(504, error(504, "UnknownError", ""))
        return None

    graph.always = timeout_when_wide
    h = Harness(graph, now=T0 + 3000 * S)
    run = h.run()
    assert h.counts() == Counter(range(300))
    assert run.stats.timeouts >= 2 and run.stats.splits == run.stats.timeouts


def test_overlap_rows_are_not_written_twice_and_late_rows_inside_it_are():
    rows = make_rows(100)  # T0 .. T0+990 s
    graph = FakeHunting(rows[:90])
    h = Harness(graph, now=T0 + 1000 * S, overlap_seconds=300)
    h.run()
    assert h.counts() == Counter(range(90))
    assert {fp for fp, t in h.state.recent.items()} and all(t >= T0 + 700 * S for t in h.state.recent.values())
    graph.rows = rows  # ten rows arrive late, inside the overlap
    h.now = T0 + 1060 * S
    run = h.run()
    assert h.counts() == Counter(range(100))
    assert graph.calls[-1][0] == T0 + 700 * S  # from the checkpoint minus the overlap
    assert run.stats.skipped == 20 and run.stats.rows == 10  # rows 70..89 re-read, 90..99 new


def test_a_kill_mid_window_repeats_at_most_save_every_rows():
    rows = make_rows(500)
    graph = FakeHunting(rows)
    h = Harness(graph, now=T0 + 5000 * S, save_every=100)

    class Killed(Exception):
        pass

    emitted = [0]

    def emit_then_die(batch: List[Row]) -> None:
        h.written.extend(batch)
        emitted[0] += 1
        if emitted[0] == 3:
            raise Killed()  # the process dies after writing, before the state is saved

    run = HuntingRun(
        graph,  # type: ignore[arg-type]
        "q",
        "dpe",
        h.state,
        emit_then_die,
        lambda st: h.saved.append(st.to_json()),
        first_start=T0,
        now=lambda: h.now,
        save_every=100,
    )
    with pytest.raises(Killed):
        run.run()
    state = HuntingState.from_json(h.saved[-1], TENANT)
    assert state is not None and state.end is None and len(state.recent) == 200
    h.state = state
    h.run(first_start=T0)
    counts = h.counts()
    assert set(counts) == set(range(500))
    assert sum(n - 1 for n in counts.values()) <= 100


def test_cpu_quota_429_is_waited_out_when_it_resets_before_the_deadline():
    graph = FakeHunting(make_rows(50))
    graph.script.append(
        lambda w: Response(
            429,
            error(
                429,
                "TooManyRequests",
                "Tenant exceeded its advanced hunting CPU quota. The quota resets in 40 seconds.",
            ),
        )
    )
    h = Harness(graph, now=T0 + 600 * S)
    run = h.run(deadline=300.0)
    assert h.slept == [40.0]
    assert run.stats.quota_waits == 1 and not run.stats.stopped_early
    assert h.counts() == Counter(range(50))
    assert len(graph.calls) == 2 and graph.calls[0][0] == graph.calls[1][0]  # the same window again


def test_cpu_quota_past_the_deadline_stops_keeps_the_window_and_remembers_the_reset():
    graph = FakeHunting(make_rows(50))
    reset = T0 + 600 * S + 700 * S
    graph.script.append(
        lambda w: Response(
            429,
            error(429, "TooManyRequests", f"CPU quota exceeded. Quota resets at {format_instant(reset)}."),
            {"Retry-After": "5"},
        )
    )
    h = Harness(graph, now=T0 + 600 * S)
    run = h.run(deadline=300.0)
    assert h.slept == [] and h.written == []
    assert run.stats.stopped_early and run.stats.quota_deferred
    assert h.state.end is None and h.state.quota_until is not None
    # The next run, still before the reset and with a short deadline, does not even ask Graph.
    calls = len(graph.calls)
    h.clock, h.now = 0.0, T0 + 900 * S
    h.run(deadline=300.0)
    assert len(graph.calls) == calls
    # A run whose deadline lies past the reset waits for it, then collects the whole window.
    h.clock = 0.0
    h.run(deadline=600.0)
    assert h.slept and h.counts() == Counter(range(50)) and h.state.quota_until is None


def test_call_rate_429_retries_after_retry_after():
    graph = FakeHunting(make_rows(5))
    graph.script.append(
        lambda w: Response(429, error(429, "TooManyRequests", "Too many requests."), {"Retry-After": "2"})
    )
    h = Harness(graph, now=T0 + 600 * S)
    run = h.run(deadline=300.0)
    assert h.slept == [2.0] and run.stats.rate_waits == 1 and len(h.written) == 5


# ---- one retry loop: the query goes through the Graph client's, on the run's clock ------------------


def test_a_5xx_is_retried_by_the_clients_loop_with_back_off_on_the_runs_clock():
    graph = FakeHunting(make_rows(5))
    graph.script.append(lambda w: Response(503, error(503, "ServiceUnavailable", "Try again.")))
    h = Harness(graph, now=T0 + 600 * S)
    run = h.run(deadline=300.0)
    # No Retry-After: the first back-off is 1-2 s with jitter, slept by the run (not a second loop's 2 s).
    assert len(h.slept) == 1 and 1.0 <= h.slept[0] <= 2.0
    assert graph.stats.retries == 1 and run.stats.rate_waits == 0 and len(h.written) == 5


def test_a_call_rate_429_storm_gives_up_as_every_graph_call_does():
    graph = FakeHunting(make_rows(5))
    graph.always = lambda w: Response(429, error(429, "TooManyRequests", "Too many requests."), {"Retry-After": "1"})
    h = Harness(graph, now=T0 + 600 * S)
    with pytest.raises(TransientError) as caught:
        h.run(deadline=300.0)
    assert caught.value.status == 429 and "gave up after 6 attempts" in str(caught.value)
    assert len(graph.calls) == 6 and h.slept == [1.0] * 5
    assert graph.stats.retries == 5 and graph.stats.throttled == 6 and h.state.end is None


def test_every_try_takes_a_slot_of_the_hunting_budget():
    class Counting:
        taken = 0

        def acquire(self, max_wait: Optional[float] = None) -> Optional[float]:
            self.taken += 1
            return 0.0

    graph = FakeHunting(make_rows(5))
    graph.script.append(lambda w: Response(401, error(401, "InvalidAuthenticationToken", "Token expired.")))
    graph.script.append(lambda w: Response(502, error(502, "BadGateway", "")))
    budget = Counting()
    h = Harness(graph, now=T0 + 600 * S, budget=budget)
    h.run(deadline=300.0)
    assert len(graph.calls) == 3 and budget.taken == 3  # the 401's and the 502's tries are queries too


def test_bad_kql_raises_once_naming_the_input_and_keeps_the_checkpoint():
    graph = FakeHunting(make_rows(5))
    graph.script.append(
        lambda w: Response(400, error(400, "BadRequest", "Failed to resolve table or column expression named 'Foo'"))
    )
    h = Harness(graph, now=T0 + 600 * S)
    with pytest.raises(HuntingError) as info:
        h.run()
    assert "input 'dpe'" in str(info.value) and "Foo" in str(info.value) and "HTTP 400" in str(info.value)
    assert len(graph.calls) == 1 and h.state.end is None


def test_a_one_second_window_still_over_the_cap_is_written_and_said():
    rows = [
        {"Timestamp": format_instant(T0 + k), "DeviceName": "pc", "N": k, "Flag": False} for k in range(30)
    ]  # thirty rows in one second
    graph = FakeHunting(rows, row_cap=10)
    h = Harness(graph, now=T0 + S, row_cap=10)
    run = h.run(first_start=T0)
    assert run.stats.truncated == 1 and len(h.written) == 10


def test_budget_without_room_before_the_deadline_stops_cleanly():
    class Empty:
        def acquire(self, max_wait: Optional[float] = None) -> Optional[float]:
            return None

    graph = FakeHunting(make_rows(5))
    h = Harness(graph, now=T0 + 600 * S, budget=Empty())
    run = h.run(deadline=10.0)
    assert run.stats.stopped_early and graph.calls == []


def test_a_401_gets_one_fresh_token_and_one_more_try():
    graph = FakeHunting(make_rows(5))
    graph.script.append(lambda w: Response(401, error(401, "InvalidAuthenticationToken", "Token expired.")))
    h = Harness(graph, now=T0 + 600 * S)
    run = h.run()
    assert graph.refreshed == 1 and run.stats.requests == 2  # both tries counted
    assert h.counts() == Counter(range(5))


def test_a_second_401_is_not_retried_again():
    graph = FakeHunting(make_rows(5))
    for _ in range(2):
        graph.script.append(lambda w: Response(401, error(401, "InvalidAuthenticationToken", "Token expired.")))
    h = Harness(graph, now=T0 + 600 * S)
    with pytest.raises(GraphError):
        h.run()
    assert graph.refreshed == 1 and len(graph.calls) == 2


def test_other_errors_raise_graph_errors():
    graph = FakeHunting(make_rows(5))
    graph.script.append(lambda w: Response(403, error(403, "Forbidden", "Missing application roles.")))
    h = Harness(graph, now=T0 + 600 * S)
    with pytest.raises(GraphError, match=r"ThreatHunting\.Read\.All"):
        h.run()
    assert not isinstance(DeadlineReached("x"), GraphError)


# ---- the shipped inputs.conf ---------------------------------------------------------------------


def test_inputs_conf_keeps_what_ucc_generates():
    """package/default/inputs.conf replaces ucc-gen's generated file in the build: it must hold every
    stanza and value ucc-gen would generate from globalConfig.json, plus only disabled examples."""
    pytest.importorskip("splunk_add_on_ucc_framework")
    from splunk_add_on_ucc_framework.generators.conf_files.create_inputs_conf import InputsConf
    from splunk_add_on_ucc_framework.global_config import GlobalConfig

    from tests.harness.splunkd_standin.server import parse_conf_file

    config = GlobalConfig.from_file(str(ROOT / "globalConfig.json"))
    generated = InputsConf(config, str(ROOT / "package"), "/nonexistent").generate_conf()
    assert generated is not None
    tmp = ROOT / ".pytest_cache" / "generated_inputs.conf"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(generated["content"])
    want = parse_conf_file(tmp)
    shipped = parse_conf_file(ROOT / "package" / "default" / "inputs.conf")
    for stanza, values in want.items():
        if stanza == "default" and not values:
            continue
        assert shipped.get(stanza) == values, stanza
    examples = {k: v for k, v in shipped.items() if "://" in k}
    assert len(examples) == 2
    for name, values in examples.items():
        assert name.startswith("defender_hunting://") and values["disabled"] == "1"
        check_query(values["query"])
        parse_lookback(values["lookback"])
    assert any(v["query"].startswith("AlertInfo") and "AlertEvidence" in v["query"] for v in examples.values())
    assert any("DeviceProcessEvents" in v["query"] for v in examples.values())


# ---- the table a query reads (defenderlineage's hunting_table) ------------------------------------


@pytest.mark.parametrize(
    ("query", "table"),
    [
        ("AlertInfo", "AlertInfo"),
        ("  DeviceProcessEvents\n| where FileName == 'x.exe'", "DeviceProcessEvents"),
        ("AlertEvidence|take 10", "AlertEvidence"),
        ("AlertInfo; ", "AlertInfo"),
        ("let t = 1d; AlertInfo | where Timestamp > ago(t)", ""),
        ("union DeviceProcessEvents, DeviceFileEvents", ""),
        ("search in (AlertInfo) 'x'", ""),
        ("AlertInfo join AlertEvidence", ""),
        ("print 1", ""),
    ],
)
def test_query_table(query: str, table: str) -> None:
    assert hunting.query_table(query) == table


def test_rows_name_the_table_their_query_reads_and_it_is_not_fingerprinted():
    graph = FakeHunting(make_rows(3))
    h = Harness(graph, now=T0 + 100 * S)
    h.run()
    assert [r.item[hunting.HUNTING_TABLE_FIELD] for r in h.written] == ["DeviceProcessEvents"] * 3
    assert all(r.item[hunting.QUERY_NAME_FIELD] == "dpe" for r in h.written)
    row = {
        k: v for k, v in h.written[0].item.items() if k not in (hunting.HUNTING_TABLE_FIELD, hunting.QUERY_NAME_FIELD)
    }
    assert hunting.fingerprint(row) in h.state.recent


# ---- answers that cannot be read whole ---------------------------------------------------------------


def _answer_bytes(rows: List[bytes]) -> bytes:
    return b'{"schema":' + json.dumps(SCHEMA).encode() + b',"results":[' + b",".join(rows) + b"]}"


def _row(n: int, name: bytes = b"pc") -> bytes:
    return b'{"Timestamp":"' + format_instant(T0 + n * S).encode() + b'","DeviceName":"' + name + b'","N":%d}' % n


def test_read_answer_repairs_invalid_bytes_row_by_row_and_leaves_out_what_cannot_be_read():
    deep = b'{"N":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    content = _answer_bytes([_row(0), _row(1, b"pc\xff\xfe1"), deep, b"17", _row(4)])
    rows, schema, bad = hunting.read_answer(content)
    assert schema == SCHEMA
    assert [r["N"] for r in rows] == [0, 1, 4] and rows[1]["DeviceName"] == "pc\ufffd\ufffd1"
    assert [(b.position, b.reason, b.repaired) for b in bad] == [
        (1, "invalid_utf8", True),
        (2, "nesting_too_deep", False),
        (3, "not_an_object", False),
    ]
    assert bad[0].item is rows[1], "the repaired row is the one written"
    # A sound answer is read whole; a result that is not an object is still reported, not dropped silently.
    rows, _, bad = hunting.read_answer(_answer_bytes([_row(0), b"null"]))
    assert [r["N"] for r in rows] == [0] and [(b.position, b.reason) for b in bad] == [(1, "not_an_object")]


@pytest.mark.parametrize("content", [_answer_bytes([_row(0)])[:-9], b'{"schema":"\xff","results":{}}', b"[]"])
def test_read_answer_refuses_an_answer_whose_envelope_is_not_sound(content: bytes):
    with pytest.raises(hunting.MalformedResponse):
        hunting.read_answer(content)


def test_bad_rows_are_counted_once_and_the_window_still_moves(caplog):
    graph = FakeHunting([])
    content = _answer_bytes([_row(0), _row(1, b"\xc3("), b'{"N":' + b"[" * 100_000 + b"]" * 100_000 + b"}"])
    graph.always = lambda window: Response(200, content)
    h = Harness(graph, now=T0 + 60 * S)
    with caplog.at_level("WARNING"):
        run = h.run()
    assert [r.item["N"] for r in h.written] == [0, 1] and h.written[1].item["DeviceName"] == "\ufffd("
    assert (run.stats.bad_repaired, run.stats.bad_skipped, run.stats.windows) == (1, 1, 1)
    assert h.state.end == T0 + 60 * S, "the cursor moves past the window"
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("bad_rows input=dpe" in w and "rows=1 reason=invalid_utf8" in w for w in warnings) == 1
    assert sum("bad_item resource=runHuntingQuery input=dpe" in w and "position=2" in w for w in warnings) == 1
    # Asked again (the overlap): the repaired row is a duplicate, not repaired a second time.
    h.now += 60 * S
    again = h.run()
    assert again.stats.bad_repaired == 0 and again.stats.skipped == 2
