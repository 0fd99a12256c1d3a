"""One HTTP session shared by the tenants of a run (transport.share_between_tenants): tokens stay per
tenant, no cookie crosses from one tenant to another, and the pool keeps a connection per request in
flight; and the budget's count of sharing inputs is computed once per stanza for a run of many tenants."""

from __future__ import annotations

import http.server
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar, Dict, Iterator, List, Set

import pytest
import requests

from defender_lineage_core.clouds import resolve
from defender_lineage_core.graph_client import ClientSecret, GraphClient, account_session
from defender_lineage_core.tenants import TENANT_WORKERS, connection_pool_size
from defender_lineage_core.transport import share_between_tenants
from defender_lineage_splunk import inputs
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant

READ_ALL = ("SecurityAlert.Read.All", "SecurityIncident.Read.All")
TENANTS = [f"{n:08x}-0000-4000-8000-{n:012x}" for n in range(1, 7)]
FILTER = {"$filter": "lastUpdateDateTime ge 2020-01-01T00:00:00Z", "$orderby": "lastUpdateDateTime asc"}


@pytest.fixture
def sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.generate(seed=5), max_lifetime=120.0) as server:
        yield server


def test_tenants_sharing_a_session_each_send_their_own_token_only(sim: GraphSimulator):
    """Each customer tenant serves data of its own, chosen by the bearer token's tenant: a token sent on
    another tenant's request would show up as that tenant's alerts in the wrong listing."""
    data = {
        t: SyntheticTenant.generate(seed=20 + n, anchor=sim.tenant.anchor, tenant_id=t) for n, t in enumerate(TENANTS)
    }
    for tenant, own in data.items():
        sim.add_customer_tenant(tenant, *READ_ALL, data=own)
    shared = share_between_tenants(account_session({}, "test"), connection_pool_size({}))
    endpoints = resolve("custom", sim.base_url, sim.base_url)

    def listing(tenant: str) -> Set[str]:
        client = GraphClient(
            endpoints, tenant, sim.client_id, ClientSecret(sim.client_secret), account="msp", session=shared
        )
        client.token(force=True)  # several tokens in flight across tenants at once
        return {item["id"] for page in client.pages("alerts_v2", dict(FILTER)) for item in page.items}

    with ThreadPoolExecutor(max_workers=len(TENANTS)) as pool:
        seen = dict(zip(TENANTS, pool.map(listing, TENANTS)))
    for tenant, own in data.items():
        expected = {item_id for item_id, _, _ in own.alert_versions()}
        assert seen[tenant] and seen[tenant] <= expected, tenant
    assert sum(1 for r in sim.requests if r.resource == "token") == len(TENANTS)
    assert "Authorization" not in shared.headers, "a token never lives on the shared session"


class _SetsCookies(http.server.BaseHTTPRequestHandler):
    seen_cookies: ClassVar[List[str]] = []

    def do_GET(self) -> None:
        self.seen_cookies.append(self.headers.get("Cookie") or "")
        self.send_response(200)
        self.send_header("Set-Cookie", "fpc=tenant-a-session; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_cookie_one_tenant_is_given_is_never_sent_for_another():
    server = http.server.HTTPServer(("127.0.0.1", 0), _SetsCookies)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/token"
        shared = share_between_tenants(account_session({}, "test"), 4)
        _SetsCookies.seen_cookies = []
        for _ in range(2):
            shared.get(url, timeout=5).close()
        assert _SetsCookies.seen_cookies == ["", ""] and len(shared.cookies) == 0
        # What a session that is not shared does (why the refusal is needed).
        plain = requests.Session()
        _SetsCookies.seen_cookies = []
        for _ in range(2):
            plain.get(url, timeout=5).close()
        assert _SetsCookies.seen_cookies == ["", "fpc=tenant-a-session"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_shared_pool_keeps_a_connection_for_each_request_in_flight():
    shared = share_between_tenants(account_session({}, "test"), connection_pool_size({}))
    sizes = {adapter.poolmanager.connection_pool_kw.get("maxsize") for adapter in shared.adapters.values()}
    assert sizes == {2 * TENANT_WORKERS + 1}  # requests' default (10) would drop connections of the workers


def test_a_run_counts_each_stanzas_tenants_once(monkeypatch: pytest.MonkeyPatch):
    entries = {f"c{n}": {"tenant_id": t, "account": "msp"} for n, t in enumerate(TENANTS)}
    accounts = {"msp": {"tenant_id": "home", "client_id": "app"}}
    stanzas = {f"{kind}://mssp": {"account": "msp", "tenants": "*"} for kind in inputs.INPUT_KINDS}
    calls: List[str] = []
    real = inputs.stanza_tenant_ids

    def counting(fields, account_fields, tenant_entries):  # type: ignore[no-untyped-def]
        calls.append(str(fields.get("account")))
        return real(fields, account_fields, tenant_entries)

    monkeypatch.setattr(inputs, "stanza_tenant_ids", counting)
    memo: Dict[str, Set[str]] = {}
    counts = [
        inputs.count_sharing_inputs(stanzas, accounts, t, "app", "defender_alerts://mssp", entries, memo)
        for t in TENANTS
    ]
    assert counts == [3] * len(TENANTS)
    assert len(calls) == len(stanzas), "each stanza's tenants are worked out once for the run, not once per tenant"
    calls.clear()
    fresh = [
        inputs.count_sharing_inputs(stanzas, accounts, t, "app", "defender_alerts://mssp", entries) for t in TENANTS
    ]
    assert fresh == counts and len(calls) == len(stanzas) * len(TENANTS)
