"""GraphClient against the Graph simulator: retries, back-off, refusals, tokens, paging, budget, deadline.

Sleeps and the clock are injected: nothing here waits for real except the loopback round trips.
"""

from __future__ import annotations

import json
import random
from typing import List, Optional

import pytest

from defender_lineage_core.budget import (
    DeadlineReached,
    RequestBudget,
    budget_per_minute,
    input_share,
    reset_registry,
    shared_budget,
)
from defender_lineage_core.clouds import resolve
from defender_lineage_core.errors import AuthError, GraphError, MalformedResponse, MissingPermission, TransientError
from defender_lineage_core.graph_client import ClientSecret, GraphClient, timeout_from_environment
from defender_lineage_splunk.inputs import count_sharing_inputs
from tests.harness.graph_sim import GraphSimulator

FILTER = {"$filter": "lastUpdateDateTime ge 2020-01-01T00:00:00Z", "$orderby": "lastUpdateDateTime asc"}


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: List[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def client_for(
    sim: GraphSimulator,
    t: FakeTime,
    secret: Optional[str] = None,
    budget: Optional[RequestBudget] = None,
    deadline: Optional[float] = None,
    graph_url: Optional[str] = None,
    max_retries: int = 5,
    timeout: float = 10.0,
) -> GraphClient:
    endpoints = resolve("custom", sim.base_url, graph_url or sim.base_url)
    return GraphClient(
        endpoints,
        sim.tenant_id,
        sim.client_id,
        ClientSecret(sim.client_secret if secret is None else secret),
        account="acme",
        sleep=t.sleep,
        clock=t.clock,
        budget=budget,
        deadline=deadline,
        max_retries=max_retries,
        timeout=timeout,
        rng=random.Random(3),
    )


def first_page(client: GraphClient, resource: str = "alerts_v2", top: str = "5"):
    return client.get_page(client.resource_url(resource), resource, {**FILTER, "$top": top})


def graph_calls(sim: GraphSimulator) -> list:
    return [r for r in sim.requests if r.resource in ("alerts_v2", "incidents")]


def test_429_waits_exactly_the_fractional_retry_after(sim, fake_time):
    sim.faults.add(status=429, retry_after="2.128", resource="alerts_v2", times=2)
    client = client_for(sim, fake_time)
    page = first_page(client)
    assert len(page.items) == 5
    assert fake_time.sleeps == [2.128, 2.128]
    assert client.stats.throttled == 2 and client.stats.retries == 2
    assert [r.status for r in graph_calls(sim)] == [429, 429, 200]


def test_503_honours_retry_after_too(sim, fake_time):
    sim.faults.add(status=503, retry_after="0.5", resource="alerts_v2", times=1)
    client = client_for(sim, fake_time)
    first_page(client)
    assert fake_time.sleeps == [0.5]


def test_without_retry_after_backs_off_exponentially_with_jitter(sim, fake_time):
    sim.faults.add(status=500, resource="alerts_v2", times=2)
    sim.faults.add(status=502, resource="alerts_v2", times=1)
    sim.faults.add(status=429, resource="alerts_v2", times=1)  # a 429 without advice backs off as well
    client = client_for(sim, fake_time)
    first_page(client)
    assert len(fake_time.sleeps) == 4
    for attempt, slept in enumerate(fake_time.sleeps):
        ceiling = 2.0 ** (attempt + 1)
        assert ceiling / 2 <= slept <= ceiling  # never an immediate retry
    assert len(set(fake_time.sleeps)) == 4


def test_gives_up_after_max_retries_with_the_resource_and_status(sim, fake_time):
    sim.faults.add(status=503, retry_after="0.1", resource="alerts_v2", times=None)
    client = client_for(sim, fake_time, max_retries=3)
    with pytest.raises(TransientError) as caught:
        first_page(client)
    assert caught.value.status == 503 and "alerts_v2" in str(caught.value) and "4 attempts" in str(caught.value)
    assert len(graph_calls(sim)) == 4 and fake_time.sleeps == [0.1, 0.1, 0.1]


def test_connection_resets_and_cut_bodies_are_retried(sim, fake_time):
    sim.faults.add(kind="reset", resource="alerts_v2", times=1)
    sim.faults.add(kind="truncate", resource="alerts_v2", times=1)
    client = client_for(sim, fake_time)
    assert len(first_page(client).items) == 5
    assert client.stats.retries == 2


def test_a_timeout_is_retried_and_then_given_up(sim, fake_time):
    sim.faults.add(kind="delay", delay=0.6, resource="alerts_v2", times=None)
    client = client_for(sim, fake_time, max_retries=1, timeout=0.2)
    with pytest.raises(TransientError) as caught:
        first_page(client)
    assert "Timeout" in str(caught.value) and "alerts_v2" in str(caught.value)
    assert len(fake_time.sleeps) == 1


@pytest.mark.parametrize("status", [400, 404])
def test_client_errors_are_not_retried(sim, fake_time, status):
    sim.faults.add(status=status, resource="alerts_v2", times=1, message="Invalid filter clause")
    client = client_for(sim, fake_time)
    with pytest.raises(GraphError) as caught:
        first_page(client)
    assert caught.value.status == status and not isinstance(caught.value, TransientError)
    assert f"HTTP {status}" in str(caught.value) and "alerts_v2" in str(caught.value)
    assert len(graph_calls(sim)) == 1 and fake_time.sleeps == []


def test_403_names_the_permission_and_admin_consent_without_retrying(sim, fake_time):
    sim.set_roles("SecurityAlert.Read.All")
    client = client_for(sim, fake_time)
    with pytest.raises(MissingPermission) as caught:
        first_page(client, "incidents")
    assert "SecurityIncident.Read.All" in str(caught.value) and "admin consent" in str(caught.value)
    assert len(graph_calls(sim)) == 1


def test_a_wrong_secret_is_one_token_request_and_an_actionable_error(sim, fake_time):
    wrong = "not-the-secret-123456"
    client = client_for(sim, fake_time, secret=wrong)
    with pytest.raises(AuthError) as caught:
        first_page(client)
    assert "AADSTS7000215" in str(caught.value) and wrong not in str(caught.value)
    assert [r.resource for r in sim.requests] == ["token"]


def test_the_token_is_cached_and_a_401_mid_paging_gets_one_refresh(sim, fake_time):
    client = client_for(sim, fake_time)
    pages = client.pages("alerts_v2", {**FILTER, "$top": "10"})
    next(pages)
    sim.faults.add(kind="expire_tokens", resource="alerts_v2", times=1)
    rest = list(pages)
    assert rest, "the listing needs more than one page"
    assert client.stats.token_requests == 2  # the first, and one refresh after the 401
    assert [r.status for r in graph_calls(sim)].count(401) == 1
    tokens = [r for r in sim.requests if r.resource == "token"]
    assert len(tokens) == 2


def test_a_token_is_reused_until_shortly_before_it_expires(sim, fake_time):
    client = client_for(sim, fake_time)
    first_page(client)
    first_page(client)
    assert client.stats.token_requests == 1
    fake_time.now += sim.token_lifetime - 301  # still inside the safety margin: reused
    first_page(client)
    assert client.stats.token_requests == 1
    fake_time.now += 2  # less than 300 s from Entra's expiry: refreshed before use
    first_page(client)
    assert client.stats.token_requests == 2


def test_a_second_401_is_not_retried_again(sim, fake_time):
    sim.faults.add(status=401, resource="alerts_v2", times=2)
    client = client_for(sim, fake_time)
    with pytest.raises(AuthError):
        first_page(client)
    assert len(graph_calls(sim)) == 2 and client.stats.token_requests == 2


@pytest.mark.parametrize("base", ["http://evil.example.com", "https://127.0.0.1:1"])
def test_a_next_link_that_leaves_the_graph_host_is_refused(sim, fake_time, base):
    sim.faults.add(kind="foreign_link", link_base=base, resource="alerts_v2", times=1)
    client = client_for(sim, fake_time)
    pages = client.pages("alerts_v2", {**FILTER, "$top": "10"})
    assert next(pages).next_link.startswith(base)
    with pytest.raises(GraphError) as caught:
        next(pages)
    assert "refusing to follow" in str(caught.value) and "alerts_v2" in str(caught.value)
    assert len(graph_calls(sim)) == 1  # nothing was sent to the foreign host (nor again to ours)


def test_a_next_link_that_drops_https_is_refused(sim, fake_time):
    # The client is configured for https; the simulator's own link is plain http.
    client = client_for(sim, fake_time, graph_url=sim.base_url.replace("http://", "https://"))
    with pytest.raises(GraphError) as caught:
        client.get_page(sim.base_url + "/v1.0/security/alerts_v2?$skiptoken=x", "alerts_v2")
    assert "drops https" in str(caught.value)


def test_a_malformed_page_names_resource_and_status_and_no_token(sim, fake_time):
    sim.faults.add(kind="malformed_json", resource="alerts_v2", times=1)
    client = client_for(sim, fake_time)
    with pytest.raises(MalformedResponse) as caught:
        first_page(client)
    message = str(caught.value)
    assert "alerts_v2" in message and "HTTP 200" in message and caught.value.status == 200
    assert not any(token in message for token in sim.issued_tokens)
    assert sim.client_secret not in message
    assert len(graph_calls(sim)) == 1  # not retried: the run stops, the cursor stays


def test_a_retry_after_past_the_deadline_stops_at_once(sim, fake_time):
    sim.faults.add(status=429, retry_after="120", resource="alerts_v2", times=1)
    client = client_for(sim, fake_time, deadline=fake_time.now + 30)
    with pytest.raises(DeadlineReached) as caught:
        first_page(client)
    assert "deadline" in str(caught.value) and fake_time.sleeps == []


def test_the_request_timeout_shrinks_near_the_deadline(sim, fake_time):
    client = client_for(sim, fake_time, deadline=fake_time.now + 2, timeout=60)
    assert client._request_timeout() == pytest.approx(7.0)
    fake_time.now += 100
    assert client._request_timeout() == 1.0


def test_every_graph_request_takes_from_the_budget_and_token_requests_do_not(sim, fake_time):
    budget = RequestBudget(burst=2, rate=0.5, clock=fake_time.clock)
    client = client_for(sim, fake_time, budget=budget)
    pages = list(client.pages("alerts_v2", {**FILTER, "$top": "10"}))
    assert len(pages) >= 5
    assert budget.granted == len(pages)  # pages only: the token request is not counted
    assert client.stats.token_requests == 1
    # Two at once, then one every two seconds.
    assert fake_time.sleeps == [pytest.approx(2.0)] * (len(pages) - 2)


def test_retries_take_from_the_budget_as_well(sim, fake_time):
    sim.faults.add(status=429, retry_after="0.25", resource="alerts_v2", times=3)
    budget = RequestBudget(burst=100, rate=1, clock=fake_time.clock)
    client = client_for(sim, fake_time, budget=budget)
    first_page(client)
    assert budget.granted == 4


def test_a_budget_wait_past_the_deadline_stops_cleanly(sim, fake_time):
    budget = RequestBudget(burst=1, rate=1 / 60, clock=fake_time.clock)
    client = client_for(sim, fake_time, budget=budget, deadline=fake_time.now + 10)
    pages = client.pages("alerts_v2", {**FILTER, "$top": "10"})
    next(pages)
    with pytest.raises(DeadlineReached):
        next(pages)
    assert budget.granted == 1


# ---- the budget on its own ----------------------------------------------------------------


def test_bucket_bound_across_two_runs_of_one_input_stays_within_its_share():
    t = FakeTime()
    for share in (150.0, 75.0, 50.0, 10.0, 3.0):
        first = RequestBudget.for_share(share, t.clock)
        assert first.per_minute_bound() == pytest.approx(share)
        # A run that spends its budget as fast as it can for 60 s, then the next run starting at once.
        stamps: List[float] = []
        start = t.now
        while t.now - start < 60:
            wait = first.acquire()
            assert wait is not None
            t.sleep(wait)
            stamps.append(t.now)
        second = RequestBudget.for_share(share, t.clock)
        while t.now - start < 120:
            wait = second.acquire()
            assert wait is not None
            t.sleep(wait)
            stamps.append(t.now)
        worst = max(sum(1 for s in stamps if a <= s <= a + 60) for a in stamps)
        assert worst <= share + 1e-9, (share, worst)


def test_budget_refuses_a_wait_longer_than_allowed_and_reserves_nothing():
    t = FakeTime()
    budget = RequestBudget(burst=1, rate=0.1, clock=t.clock)
    assert budget.acquire(0) == 0
    assert budget.acquire(5) is None
    assert budget.acquire(10) == pytest.approx(10)
    assert budget.granted == 2


def test_one_bucket_per_app_and_tenant_in_a_process():
    reset_registry()
    t = FakeTime()
    a = shared_budget("Client-A", "Tenant-1", 150, t.clock)
    assert shared_budget("client-a", "tenant-1", 150, t.clock) is a
    assert shared_budget("client-a", "tenant-2", 150, t.clock) is not a
    tighter = shared_budget("client-a", "tenant-1", 50, t.clock)
    assert tighter is a and a.per_minute_bound() == pytest.approx(50)
    shared_budget("client-a", "tenant-1", 150, t.clock)  # never loosened by a later, larger share
    assert a.per_minute_bound() == pytest.approx(50)
    reset_registry()


def test_inputs_sharing_an_app_registration_are_counted():
    accounts = {
        "acme": {"tenant_id": "T1", "client_id": "C1"},
        "acme-copy": {"tenant_id": "t1", "client_id": "c1"},  # the same app registration, another name
        "other": {"tenant_id": "t1", "client_id": "c2"},
    }
    inputs = {
        "defender_alerts://a": {"account": "acme"},
        "defender_incidents://i": {"account": "acme-copy"},
        "defender_hunting://h": {"account": "acme", "disabled": "1"},
        "defender_alerts://o": {"account": "other"},
        "monitor:///var/log": {"account": "acme"},
        "default": {},
    }
    assert count_sharing_inputs(inputs, accounts, "t1", "c1", "defender_alerts://a") == 2
    assert count_sharing_inputs({}, accounts, "t1", "c1", "defender_alerts://new") == 1
    assert input_share(150, 2) == 75 and input_share(150, 0) == 150


def test_environment_knobs():
    assert budget_per_minute({}) == 150
    assert budget_per_minute({"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "600"}) == 600
    assert budget_per_minute({"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "0"}) is None
    assert budget_per_minute({"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "lots"}) == 150
    assert timeout_from_environment({}) == 60
    assert timeout_from_environment({"TA_DEFENDER_LINEAGE_HTTP_TIMEOUT": "1.5"}) == 1.5
    assert timeout_from_environment({"TA_DEFENDER_LINEAGE_HTTP_TIMEOUT": "-1"}) == 60


@pytest.mark.parametrize("recycle", [True, False])
def test_recycling_empties_a_page_s_items_only_once_the_next_page_is_asked_for(sim, fake_time, recycle):
    client = client_for(sim, fake_time)
    pages = client.pages("alerts_v2", {**FILTER, "$top": "10"}, recycle=recycle)
    first = next(pages)
    kept = list(first.items)
    assert len(kept) == 10 and first.next_link
    second = next(pages)  # the caller asks for the next page: it is done with the first
    assert len(second.items) == 10 and second.items != kept
    assert first.items == ([] if recycle else kept)
    assert [json.loads(t) for t in first.texts] == kept  # the texts are never touched
