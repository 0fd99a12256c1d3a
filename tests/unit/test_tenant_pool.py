"""The tenant pool is wide for waiting and narrow for pages (defender_lineage_core/page_slots.py): many
tenants wait on Graph at once, while the pages parsed, written and committed at once stay bounded."""

from __future__ import annotations

import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional

import pytest

from defender_lineage_core.clouds import resolve
from defender_lineage_core.graph_client import ClientSecret, GraphClient, account_session
from defender_lineage_core.page_slots import PageSlots
from defender_lineage_core.tenant_pool import run_each
from defender_lineage_core.tenants import PAGE_SLOTS, TENANT_WORKERS, connection_pool_size, worker_count
from defender_lineage_core.transport import share_between_tenants
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant

READ_ALL = ("SecurityAlert.Read.All", "SecurityIncident.Read.All")
TENANTS = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1, 17)]
SMALL_PAGES = {
    "$filter": "lastUpdateDateTime ge 2020-01-01T00:00:00Z",
    "$orderby": "lastUpdateDateTime asc",
    "$top": "10",
}


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.generate(seed=5), max_lifetime=120.0) as server:
        yield server


class Holding:
    """Pages a caller holds (from receiving one to asking for the next), counted by the callers."""

    def __init__(self) -> None:
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def take(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def give_back(self) -> None:
        with self._lock:
            self.now -= 1


def test_pages_held_at_once_never_exceed_the_runs_slots(sim: GraphSimulator):
    """16 tenants paging at once through 3 slots: never more than 3 pages held, every page still read."""
    for tenant in TENANTS:
        sim.add_customer_tenant(tenant, *READ_ALL)
    shared = share_between_tenants(account_session({}, "test"), connection_pool_size({}))
    endpoints = resolve("custom", sim.base_url, sim.base_url)
    slots = PageSlots(3)
    holding = Holding()

    def listing(tenant: str) -> List[str]:
        client = GraphClient(
            endpoints, tenant, sim.client_id, ClientSecret(sim.client_secret), account="msp", session=shared
        )
        client.page_slots = slots
        ids: List[str] = []
        for page in client.pages("alerts_v2", dict(SMALL_PAGES), recycle=True):
            holding.take()
            ids.extend(item["id"] for item in page.items)
            time.sleep(0.005)  # writing the page: long enough for the other tenants' pages to arrive meanwhile
            holding.give_back()
        return ids

    with ThreadPoolExecutor(max_workers=len(TENANTS)) as pool:
        seen = list(pool.map(listing, TENANTS))
    expected = sorted(item_id for item_id, _, _ in sim.tenant.alert_versions())
    assert all(sorted(set(ids)) == sorted(set(expected)) for ids in seen)
    assert holding.peak <= 3, f"{holding.peak} pages held at once through 3 slots"
    assert slots.peak == 3 and slots.in_use == 0, "the slots were all used and all given back"


def test_a_listing_stopped_early_gives_its_slot_back(sim: GraphSimulator):
    endpoints = resolve("custom", sim.base_url, sim.base_url)
    client = GraphClient(endpoints, sim.tenant_id, sim.client_id, ClientSecret(sim.client_secret), account="msp")
    client.page_slots = PageSlots(1)
    listing = client.pages("alerts_v2", dict(SMALL_PAGES))
    next(listing)
    assert client.page_slots.in_use == 1
    listing.close()  # the caller stops (deadline, error) holding a page
    assert client.page_slots.in_use == 0
    assert next(iter(client.pages("alerts_v2", dict(SMALL_PAGES)))).items, "the one slot is free again"


def test_the_pool_is_wider_than_the_page_bound():
    assert worker_count({}, 500) == TENANT_WORKERS > PAGE_SLOTS


class _Stats:
    """A tenant's run summary, standing in for collector.RunStats."""


def test_a_run_holds_no_finished_tenants_results():
    """Idle memory flat in the tenant count: what a finished tenant's collection returned is let go (the
    pool made a future per tenant up front, holding every tenant's result until the run ended); the run
    still answers the last tenant's stats and how many tenants failed."""
    workers = 2
    labels = [f"c{n:03d}" for n in range(60)]
    made: Dict[str, Any] = {}
    most_alive = 0
    lock = threading.Lock()

    def collect(label: str) -> Optional[_Stats]:
        nonlocal most_alive
        with lock:
            most_alive = max(most_alive, sum(1 for ref in made.values() if ref() is not None))
            stats = _Stats()
            made[label] = weakref.ref(stats)
        return None if label == "c010" else stats

    failed, last = run_each(labels, collect, workers, "tenant")
    assert len(made) == 60 and failed == 1 and last is made["c059"]()
    assert most_alive <= 2 * workers, f"{most_alive} finished tenants' results were still held"


def test_a_defect_in_one_call_reaches_the_caller_after_the_others():
    done: List[int] = []

    def one(n: int) -> int:
        if n == 3:
            raise RuntimeError("defect")
        done.append(n)
        return n

    with pytest.raises(RuntimeError):
        run_each(list(range(10)), one, 1, "tenant")
    assert run_each([], one, 4, "tenant") == (0, None)


def test_a_page_whose_body_was_cut_waits_for_its_retry_without_a_slot(sim: GraphSimulator):
    """The slot is taken with a 200's headers; a body cut mid-way is retried after a back-off, and the
    tenant waits that back-off holding no slot (it would hold up the pages of every other tenant)."""
    sim.faults.add(kind="truncate", resource="alerts_v2", times=1)
    slots = PageSlots(1)
    during_waits: List[int] = []

    def sleep(seconds: float) -> None:
        during_waits.append(slots.in_use)

    endpoints = resolve("custom", sim.base_url, sim.base_url)
    client = GraphClient(
        endpoints, sim.tenant_id, sim.client_id, ClientSecret(sim.client_secret), account="msp", sleep=sleep
    )
    client.page_slots = slots
    ids = {item["id"] for page in client.pages("alerts_v2", dict(SMALL_PAGES)) for item in page.items}
    assert ids == {item_id for item_id, _, _ in sim.tenant.alert_versions()}
    assert during_waits and during_waits[0] == 0, f"slots held while waiting to retry: {during_waits}"
    assert slots.in_use == 0 and slots.peak == 1
