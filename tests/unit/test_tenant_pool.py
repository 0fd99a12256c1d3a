"""The tenant pool is wide for waiting and narrow for pages (defender_lineage_core/page_slots.py): many
tenants wait on Graph at once, while the pages parsed, written and committed at once stay bounded."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List

import pytest

from defender_lineage_core.clouds import resolve
from defender_lineage_core.graph_client import ClientSecret, GraphClient, account_session
from defender_lineage_core.page_slots import PageSlots
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
