"""Bounded HTTP exchanges and odd answers, against the Graph simulator's transport faults.

A trickled body ends at the exchange's total deadline, a gzip bomb stops at the body cap, an odd
``expires_in`` gets the default lifetime, an HTML 200 one clear message, a self-pointing nextLink
stops paging, and no remote error body reaches a message raw.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from defender_lineage_core.account_check import AccountCheckError, check_account
from defender_lineage_core.errors import (
    AuthError,
    GraphError,
    MalformedResponse,
    PagingLoop,
    ResponseTooLarge,
    auth_error,
    graph_error,
    safe_text,
)
from defender_lineage_core.graph_client import DEFAULT_TOKEN_LIFETIME, GraphClient
from defender_lineage_core.hunting import HuntingRun, HuntingState
from defender_lineage_core.timestamps import TICKS_PER_SECOND
from defender_lineage_core.transport import bounded_exchange
from tests.harness.graph_sim import GraphSimulator
from tests.harness.graph_sim.faults import FAKE_JWT, hostile_entra_error, hostile_graph_error
from tests.unit.test_account_check import account
from tests.unit.test_graph_client import FILTER, FakeTime, client_for, first_page

FORGED = "run_summary"


@pytest.fixture
def client(sim: GraphSimulator) -> GraphClient:
    return client_for(sim, FakeTime(), timeout=5.0)


def assert_safe(text: str) -> None:
    """No raw control character (so no forged line), no forged field, no token, bounded."""
    assert "status=ok" not in text
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in text), repr(text)
    assert FAKE_JWT not in text and FAKE_JWT[:20] not in text
    assert len(text) < 1200


# ---- time --------------------------------------------------------------------------------------


def test_a_trickled_body_is_cut_at_the_exchange_deadline_and_retried(sim, client):
    # Each byte comes well inside the per-read timeout (5 s): only a total deadline ends it.
    sim.faults.add(kind="trickle", resource="alerts_v2", trickle_rate=200, times=1)
    client.exchange_timeout = 1.0
    started = time.monotonic()
    page = first_page(client, top="1")
    assert len(page.items) == 1
    assert client.stats.retries == 1
    assert [r.fault for r in sim.requests if r.resource == "alerts_v2"] == ["trickle", None]
    assert time.monotonic() - started < 4.0  # one second cut, a 1-2 s back-off is faked


def test_trickled_headers_are_cut_at_the_exchange_deadline_too(sim, client):
    # No response object exists yet: the worker is left to its read timeout, the caller goes on.
    sim.faults.add(kind="trickle_head", resource="alerts_v2", trickle_rate=40, times=1)
    client.exchange_timeout = 1.0
    started = time.monotonic()
    assert len(first_page(client, top="1").items) == 1
    assert client.stats.retries == 1
    assert time.monotonic() - started < 4.0


def test_a_trickled_body_near_the_run_deadline_ends_the_run_cleanly(sim):
    from defender_lineage_core.budget import DeadlineReached

    t = FakeTime()
    client = client_for(sim, t, timeout=60.0, deadline=t.now - 4.0)  # 1 s of grace left
    client.token()
    sim.faults.add(kind="trickle", resource="alerts_v2", trickle_rate=200, times=1)
    started = time.monotonic()
    with pytest.raises(DeadlineReached, match="run's deadline"):
        first_page(client, top="1")
    assert time.monotonic() - started < 3.0


def test_a_trickled_token_answer_is_bounded_too(sim, client):
    sim.faults.add(kind="trickle", resource="token", trickle_rate=50, times=1)
    client.exchange_timeout = 1.0
    assert client.token()
    assert client.stats.retries == 1


# ---- memory ------------------------------------------------------------------------------------


def test_a_gzip_bomb_stops_at_the_body_cap(sim, client):
    sim.faults.add(kind="gzip_bomb", resource="alerts_v2", bomb_bytes=64 << 20, times=None)
    client.max_body = 1 << 20
    with pytest.raises(ResponseTooLarge, match="larger than 1 MiB once decompressed") as caught:
        first_page(client)
    assert caught.value.resource == "alerts_v2"
    assert len([r for r in sim.requests if r.resource == "alerts_v2"]) == 1  # refused, not retried


def test_a_plain_body_past_the_cap_is_refused(sim, client):
    client.max_body = 4096
    with pytest.raises(ResponseTooLarge):
        first_page(client, top="50")


@pytest.mark.parametrize(
    "encoding, pack",
    [
        ("gzip", gzip.compress),
        ("gzip", lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:])),  # two gzip members
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b)[2:-4]),  # raw deflate, as some servers send it
    ],
)
def test_compressed_pages_are_inflated_exactly(sim, client, encoding, pack):
    page = {"value": [{"id": "a1", "lastUpdateDateTime": "2026-01-01T00:00:00Z"}]}
    text = json.dumps(page).encode()
    sim.faults.add(status=200, resource="alerts_v2", body=pack(text), headers={"Content-Encoding": encoding})
    assert first_page(client).items == page["value"]


def test_an_unknown_content_encoding_is_named(sim, client):
    sim.faults.add(status=200, resource="alerts_v2", body=b"xx", headers={"Content-Encoding": "br"})
    with pytest.raises(MalformedResponse, match="Content-Encoding 'br'"):
        first_page(client)


# ---- token answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("expires_in", [None, '"soon"', "-60", "NaN", "0", "Infinity", "true", "[1]"])
def test_an_odd_expires_in_gets_the_default_lifetime_and_one_warning(sim, expires_in, caplog):
    t = FakeTime()
    client = client_for(sim, t)
    sim.faults.add(kind="token_expires", resource="token", expires_in=expires_in, times=None)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            first_page(client, top="1")
        t.now += DEFAULT_TOKEN_LIFETIME - 301  # still inside the default lifetime's reuse window
        first_page(client, top="1")
    assert client.stats.token_requests == 1
    warnings = [r.getMessage() for r in caplog.records if "token_lifetime" in r.getMessage()]
    assert len(warnings) == 1 and f"used for {int(DEFAULT_TOKEN_LIFETIME)} s" in warnings[0]
    t.now += 2  # past it: a fresh token
    first_page(client, top="1")
    assert client.stats.token_requests == 2


def test_a_numeric_string_expires_in_is_honoured_silently(sim, caplog):
    t = FakeTime()
    client = client_for(sim, t)
    sim.faults.add(kind="token_expires", resource="token", expires_in='"1200"', times=None)
    with caplog.at_level(logging.WARNING):
        first_page(client, top="1")
        t.now += 899  # 1200 - 300 s of safety
        first_page(client, top="1")
        t.now += 2
        first_page(client, top="1")
    assert client.stats.token_requests == 2
    assert not [r for r in caplog.records if "token_lifetime" in r.getMessage()]


def test_an_html_200_from_the_token_endpoint_is_one_clear_message(sim, client):
    sim.faults.add(kind="html", resource="token", times=None)
    with pytest.raises(AuthError) as caught:
        client.token()
    message = str(caught.value)
    assert "HTTP 200 but not Entra ID's JSON token answer" in message and "captive portal" in message
    assert "HTTP 200 HTTP 200" not in message and "(HTTP 200)" not in message


def test_a_token_error_without_an_entra_body_names_its_status_once():
    message = str(auth_error(404, None, "acme"))
    assert "HTTP 404 (no Entra error code in the answer)" in message and "HTTP 404 HTTP 404" not in message


# ---- paging ------------------------------------------------------------------------------------


def test_a_self_pointing_next_link_stops_paging_with_an_error(sim, client):
    sim.faults.add(kind="self_link", resource="alerts_v2", after=1, times=None)
    pages = client.pages("alerts_v2", {**FILTER, "$top": "3"})
    seen = []
    with pytest.raises(PagingLoop, match="already followed"):
        for page in pages:
            seen.append([item["id"] for item in page.items])
    # page 1, then page 2 whose link points at itself: both handed over, page 2 never asked for again
    assert len(seen) == 2 and seen[0] != seen[1] and all(len(ids) == 3 for ids in seen)
    assert len([r for r in sim.requests if r.resource == "alerts_v2"]) == 2


# ---- error bodies --------------------------------------------------------------------------------


def test_safe_text_escapes_controls_redacts_tokens_and_truncates():
    text = safe_text(f"a\nb\r\x1b[2J\u2028 Bearer abc.def {FAKE_JWT} " + "x" * 500)
    assert_safe(text)
    assert text.startswith("a\\nb\\r\\x1b[2J\\u2028 Bearer <redacted> <redacted token> x")
    assert len(text) == 200 and text.endswith("...")
    assert safe_text('x" status=ok "') == "x\\x22 status\\x3dok \\x22"  # no field, no end of a quoted value


def test_a_hostile_graph_error_body_is_shown_only_through_its_known_fields(sim, client):
    sim.faults.add(status=400, resource="alerts_v2", body=hostile_graph_error(), times=None)
    with pytest.raises(GraphError) as caught:
        first_page(client)
    message = str(caught.value)
    assert_safe(message)
    assert "HTTP 400 BadRequest" in message and "request-id=6b8e3f1a-0d9c-4e7b-9a52-1c3d4e5f6a7b" in message
    assert "Bearer <redacted>" in message


def test_a_hostile_graph_error_code_cannot_forge_a_line():
    body = hostile_graph_error(code="Forbidden\nrun_summary status=ok")
    for status in (401, 403, 500):
        assert_safe(str(graph_error(status, body, "alerts_v2")))


def test_a_hostile_entra_error_body_keeps_the_aadsts_code_only(sim, client):
    sim.faults.add(status=401, resource="token", body=hostile_entra_error(), times=None)
    with pytest.raises(AuthError) as caught:
        client.token()
    message = str(caught.value)
    assert_safe(message)
    assert "AADSTS7000215" in message and "trace_id=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" in message
    assert "Invalid client secret" not in message  # error_description is read for its number only
    assert_safe(str(auth_error(400, {"error": "x\ny", "error_description": FAKE_JWT}, "acme")))


def test_the_account_check_shows_no_hostile_body(sim):
    acct = account(sim)
    # Refusals the check has no fixed sentence for (an unknown AADSTS number, an unexpected 409):
    # their message is built from the error's own fields.
    for resource, status, body in (
        ("token", 401, hostile_entra_error(12345)),
        ("alerts_v2", 409, hostile_graph_error()),
    ):
        sim.faults.clear()
        sim.faults.add(status=status, resource=resource, body=body, times=None)
        with pytest.raises(AccountCheckError) as caught:
            check_account(acct)
        assert caught.value.kind in ("auth_failed", "graph_failed")
        assert_safe(str(caught.value))


# ---- hunting and the account check go through the same exchange ----------------------------------


def hunting_run(client: GraphClient, sim: GraphSimulator) -> HuntingRun:
    anchor = sim.tenant.anchor_ticks
    return HuntingRun(
        client,
        "DeviceProcessEvents",
        "dpe",
        HuntingState(sim.tenant_id),
        lambda rows: None,
        lambda state: None,
        first_start=anchor - 3600 * TICKS_PER_SECOND,
        now=lambda: anchor,
        sleep=client._sleep,
        clock=client._clock,
    )


def test_a_hunting_answer_that_is_a_gzip_bomb_stops_at_the_cap(sim, client):
    sim.faults.add(kind="gzip_bomb", resource="runHuntingQuery", bomb_bytes=64 << 20, times=None)
    client.max_body = 1 << 20
    with pytest.raises(ResponseTooLarge, match=r"runHuntingQuery: the answer .* larger than 1 MiB"):
        hunting_run(client, sim).run()


def test_a_hostile_hunting_400_is_shown_safely(sim, client):
    sim.faults.add(status=400, resource="runHuntingQuery", body=hostile_graph_error(), times=None)
    with pytest.raises(GraphError) as caught:
        hunting_run(client, sim).run()
    assert "input 'dpe'" in str(caught.value)
    assert_safe(str(caught.value))


def test_the_account_check_facing_a_trickled_token_answer_says_it_timed_out(sim):
    sim.faults.add(kind="trickle", resource="token", trickle_rate=20, times=None)
    started = time.monotonic()
    with pytest.raises(AccountCheckError) as caught:
        check_account(account(sim), timeout=1.0)  # one exchange: 1 s in all; one retry
    assert caught.value.kind == "network_timeout" and "did not answer" in str(caught.value)
    assert time.monotonic() - started < 6.0


def test_chunked_answers_are_read_whole_and_the_connection_is_reused():
    body = b'{"value":[' + b",".join(b'{"id":"%d"}' % i for i in range(20000)) + b"]}"
    connections = set()

    class Chunked(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            connections.add(self.client_address)
            data = gzip.compress(body) if self.path == "/gz" else body
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            if self.path == "/gz":
                self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            for at in range(0, len(data), 7000):
                part = data[at : at + 7000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Chunked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        session = requests.Session()
        for path in ("/plain", "/gz", "/plain"):
            url = f"http://127.0.0.1:{server.server_address[1]}{path}"
            answer = bounded_exchange(session, "GET", url, read_timeout=5.0, limit=10.0)
            assert answer.content == body
        assert len(connections) == 1  # each body read to its end: the connection went back to the pool
    finally:
        server.shutdown()
        server.server_close()
