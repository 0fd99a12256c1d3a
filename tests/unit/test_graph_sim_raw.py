"""The simulator's raw items (``SyntheticTenant.add_raw``): exact bytes, filed by their instant."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Iterator

import pytest
import requests

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.timeutil import TICKS_PER_SECOND, format_ticks
from tests.unit.test_graph_sim import auth

ANCHOR = datetime(2026, 11, 20, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.bulk(30, seed=3, anchor=ANCHOR, single_version=True), max_lifetime=120) as s:
        yield s


def listing(sim: GraphSimulator, **params: str) -> bytes:
    with requests.Session() as http:
        r = http.get(f"{sim.base_url}/v1.0/security/alerts_v2", headers=auth(sim, http), params=params, timeout=10)
    assert r.status_code == 200
    return r.content


def test_raw_bytes_are_served_exactly_in_their_place_among_the_generated_items(sim):
    versions = sim.tenant.alerts.versions
    at = versions[10]
    body = b'{"id":"bad","lastUpdateDateTime":"' + at.lud.encode() + b'","t":"\xff\xfe"}'
    raw = sim.tenant.add_raw("alerts_v2", body, "bad", at.lud, ticks=at.ticks)
    page = listing(sim, **{"$orderby": "lastUpdateDateTime asc", "$top": "100"})
    assert body in page  # not re-encoded: the invalid bytes reach the client
    ids = [item["id"] for item in json.loads(page.decode("utf-8", "surrogateescape"))["value"]]
    assert ids == [v.item_id for v in sorted([*versions, raw], key=lambda v: (v.ticks, v.item_id))]


def test_a_raw_item_stamped_in_the_future_is_listed_now_and_honours_the_filter(sim):
    far = "9999-12-31T23:59:59.9999999Z"
    sim.tenant.add_raw("alerts_v2", b'{"id":"far","lastUpdateDateTime":"' + far.encode() + b'"}', "far", far)
    everything = listing(sim, **{"$orderby": "lastUpdateDateTime asc", "$top": "100"})
    assert everything.endswith(b'{"id":"far","lastUpdateDateTime":"' + far.encode() + b'"}]}')
    later = format_ticks(sim.tenant.anchor_ticks + TICKS_PER_SECOND)
    only_far = listing(sim, **{"$filter": f"lastUpdateDateTime ge {later}", "$orderby": "lastUpdateDateTime asc"})
    assert b'"far"' in only_far and sim.tenant.alerts.versions[0].raw not in only_far
    none = listing(sim, **{"$filter": f"lastUpdateDateTime le {later}", "$top": "100"})
    assert b'"far"' not in none


def test_a_raw_item_can_appear_later(sim):
    sim.tenant.add_raw(
        "alerts_v2", b'{"id":7}', "7", sim.tenant.alerts.versions[0].lud, shown_from="2030-01-01T00:00:00Z"
    )
    assert b'{"id":7}' not in listing(sim, **{"$top": "100"})
    sim.set_clock("2030-01-01T00:00:00Z")
    assert b'{"id":7}' in listing(sim, **{"$top": "100"})
