"""Tenants (issue 15): the ``tenants`` field, tenant selection, checkpoint keys, budget sharing, and
the consent check on save against the simulator's customer tenants."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List

import pytest
from defender_lineage_eventstream import write_page
from splunklib import modularinput as smi

from defender_lineage_core.account_check import AccountCheckError, check_tenant
from defender_lineage_core.clouds import resolve
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.settings import Account
from defender_lineage_core.tenants import (
    Tenant,
    admin_consent_url,
    check_tenant_fields,
    parse_tenants_field,
    select_tenants,
    worker_count,
)
from defender_lineage_splunk.inputs import (
    checkpoint_key,
    count_hunting_inputs,
    count_sharing_inputs,
    tenant_cursor_pattern,
)
from tests.harness.graph_sim import GraphSimulator
from tests.unit.test_account_check import account

CUSTOMER = "0f1e2d3c-4b5a-4987-8654-3210fedcba98"
STRANGER = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
READ_ALL = ("SecurityAlert.Read.All", "SecurityIncident.Read.All")


def test_tenants_field_empty_star_or_labels():
    assert parse_tenants_field(None) is None and parse_tenants_field("  ") is None
    assert parse_tenants_field(" * ") == ("*",)
    assert parse_tenants_field("contoso, fabrikam-eu,contoso,f_3") == ("contoso", "fabrikam-eu", "f_3")
    for bad in ("contoso, *", "con toso", "contoso,,fabrikam", "café"):
        with pytest.raises(ConfigError, match="tenant"):
            parse_tenants_field(bad)


def test_tenant_entry_fields_are_checked_and_named():
    check_tenant_fields("contoso", {"tenant_id": CUSTOMER, "account": "msp"}, creating=True)
    with pytest.raises(ConfigError, match="label"):
        check_tenant_fields("con.toso", {"tenant_id": CUSTOMER, "account": "msp"}, creating=True)
    with pytest.raises(ConfigError, match="tenant_id"):
        check_tenant_fields("contoso", {"tenant_id": "contoso.com", "account": "msp"}, creating=True)
    with pytest.raises(ConfigError, match="account"):
        check_tenant_fields("contoso", {"tenant_id": CUSTOMER}, creating=True)
    check_tenant_fields("contoso", {"disabled": "1"}, creating=False)  # an edit sends what changes


def test_star_takes_the_enabled_tenants_of_the_input_account_only():
    entries = {
        "b": {"tenant_id": STRANGER.upper(), "account": "msp"},
        "a": {"tenant_id": CUSTOMER, "account": "msp"},
        "off": {"tenant_id": CUSTOMER, "account": "msp", "disabled": "1"},
        "other": {"tenant_id": CUSTOMER, "account": "another_msp"},
    }
    chosen, problems = select_tenants(("*",), "msp", entries)
    assert chosen == [Tenant("a", CUSTOMER, "msp"), Tenant("b", STRANGER, "msp")] and problems == []
    chosen, problems = select_tenants(("b", "off", "other", "ghost"), "msp", entries)
    assert chosen == [Tenant("b", STRANGER, "msp")]
    assert [p.split("'")[1] for p in problems] == ["off", "other", "ghost"]
    assert "disabled" in problems[0] and "another_msp" in problems[1] and "not configured" in problems[2]


def test_checkpoint_key_is_unchanged_without_tenants_and_per_tenant_id_with_them():
    # The key an input used before tenants existed: no re-ingest on upgrade.
    assert checkpoint_key("defender_alerts", "prod/eu tenant") == "defender_alerts__prod_eu_tenant"
    assert checkpoint_key("defender_alerts", "mssp", CUSTOMER.upper()) == f"defender_alerts__mssp__{CUSTOMER}"
    assert checkpoint_key("defender_alerts", "mssp", CUSTOMER) != checkpoint_key("defender_alerts", "mssp", STRANGER)


def test_inputs_reaching_a_customer_tenant_share_its_budget():
    accounts = {"msp": {"tenant_id": "home", "client_id": "C1"}, "other": {"tenant_id": "t9", "client_id": "c2"}}
    entries = {"a": {"tenant_id": CUSTOMER, "account": "msp"}, "b": {"tenant_id": STRANGER, "account": "msp"}}
    inputs = {
        "defender_alerts://all": {"account": "msp", "tenants": "*"},
        "defender_incidents://a_only": {"account": "msp", "tenants": "a"},
        "defender_alerts://b_only": {"account": "msp", "tenants": "b"},
        "defender_alerts://home": {"account": "msp"},
        "defender_hunting://a_hunt": {"account": "msp", "tenants": "a"},
        "defender_alerts://broken": {"account": "msp", "tenants": "a, *"},
    }
    assert count_sharing_inputs(inputs, accounts, CUSTOMER, "c1", "defender_alerts://all", entries) == 3
    assert count_sharing_inputs(inputs, accounts, STRANGER, "c1", "defender_alerts://all", entries) == 2
    assert count_sharing_inputs(inputs, accounts, "home", "c1", "defender_alerts://home", entries) == 1
    assert count_hunting_inputs(inputs, accounts, CUSTOMER, "defender_hunting://a_hunt", entries) == 1


def test_admin_consent_url_uses_the_cloud_login_host():
    client = "5b1a7e62-0f3c-4d4e-9a1b-2c3d4e5f6a7b"
    assert (
        admin_consent_url(resolve("global", "", "").login_root, CUSTOMER, client)
        == f"https://login.microsoftonline.com/{CUSTOMER}/adminconsent?client_id={client}"
    )
    assert admin_consent_url(resolve("usgov_gcchigh", "", "").login_root, CUSTOMER, client).startswith(
        f"https://login.microsoftonline.us/{CUSTOMER}/adminconsent?"
    )


@pytest.fixture
def sim(fresh_sim: GraphSimulator) -> GraphSimulator:
    return fresh_sim  # one simulator per test, as before: tests here change what a reset does not undo


def home_account(sim: GraphSimulator) -> Account:
    return account(sim)  # the account check's tests' account: the app's home tenant in the simulator


def test_a_consented_customer_tenant_passes(sim: GraphSimulator):
    sim.add_customer_tenant(CUSTOMER, *READ_ALL)
    result = check_tenant(home_account(sim), "contoso", CUSTOMER.upper(), timeout=5)
    assert (
        result.tenant_id == CUSTOMER
        and result.account == "contoso"
        and set(result.resources)
        == {
            "alerts_v2",
            "incidents",
        }
    )
    token_paths = [r.path for r in sim.requests if r.resource == "token"]
    assert token_paths and all(f"/{CUSTOMER}/" in p for p in token_paths)


def test_a_tenant_without_consent_gets_the_admin_consent_url_and_permissions(sim: GraphSimulator):
    sim.add_customer_tenant(CUSTOMER, consented=False)
    account = home_account(sim)
    with pytest.raises(AccountCheckError) as refused:
        check_tenant(account, "contoso", CUSTOMER, timeout=5, hunting=True)
    message = str(refused.value)
    assert refused.value.kind == "missing_consent" and refused.value.code == "AADSTS7000229"
    assert f"{sim.base_url}/{CUSTOMER}/adminconsent?client_id={sim.client_id}" in message
    assert "SecurityAlert.Read.All, SecurityIncident.Read.All, ThreatHunting.Read.All" in message
    assert "'contoso'" in message and "GDAP" in message
    assert sim.client_secret not in message


def test_consent_without_the_permissions_names_them_and_the_url(sim: GraphSimulator):
    sim.add_customer_tenant(CUSTOMER, "SecurityAlert.Read.All")  # consented before incidents were needed
    with pytest.raises(AccountCheckError) as refused:
        check_tenant(home_account(sim), "contoso", CUSTOMER, timeout=5)
    message = str(refused.value)
    assert refused.value.kind == "missing_consent" and "HTTP 403" in message
    assert f"/{CUSTOMER}/adminconsent?client_id={sim.client_id}" in message and "SecurityIncident.Read.All" in message


def test_an_unknown_tenant_is_not_mistaken_for_missing_consent(sim: GraphSimulator):
    with pytest.raises(AccountCheckError) as refused:
        check_tenant(home_account(sim), "typo", STRANGER, timeout=5)
    assert refused.value.kind == "unknown_tenant" and "adminconsent" not in str(refused.value)


class _OverlapDetector:
    """A stdout that notices two writers inside ``write`` at once (each write yields the GIL)."""

    def __init__(self) -> None:
        self.inside = 0
        self.overlaps = 0
        self.pages: List[str] = []
        self.guard = threading.Lock()

    def write(self, text: str) -> int:
        with self.guard:
            self.inside += 1
            self.overlaps += self.inside > 1
        time.sleep(0.002)
        self.pages.append(text)
        with self.guard:
            self.inside -= 1
        return len(text)

    def flush(self) -> None:
        time.sleep(0.001)


def test_pages_of_concurrent_tenants_reach_stdout_whole():
    out = _OverlapDetector()
    writer = smi.EventWriter(output=out)  # type: ignore[arg-type]
    pages = [f"<event>tenant {t} page {p}</event>" for t in range(8) for p in range(10)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda page: write_page(writer, page), pages))
    assert out.overlaps == 0
    assert out.pages[0] == "<stream>" and sorted(out.pages[1:]) == sorted(pages)


def test_worker_count_is_bounded_by_the_knob_and_the_tenants():
    assert worker_count({}, 100) == 32 and worker_count({}, 3) == 3 and worker_count({}, 0) == 1
    assert worker_count({"TA_DEFENDER_LINEAGE_TENANT_WORKERS": "8"}, 100) == 8
    assert worker_count({"TA_DEFENDER_LINEAGE_TENANT_WORKERS": "zero"}, 100) == 32


def test_the_per_tenant_cursors_of_one_input_and_of_no_other_are_matched():
    pattern = re.compile(tenant_cursor_pattern("defender_alerts", "foo"))
    assert pattern.match(checkpoint_key("defender_alerts", "foo", CUSTOMER))
    for other in (
        checkpoint_key("defender_alerts", "foo"),  # its own tenant-less cursor is deleted by key
        checkpoint_key("defender_alerts", "foo__bar", CUSTOMER),
        checkpoint_key("defender_alerts", "foox", CUSTOMER),
        checkpoint_key("defender_incidents", "foo", CUSTOMER),
    ):
        assert not pattern.match(other), other
