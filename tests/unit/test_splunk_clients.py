"""defender_lineage_splunk/clients.py: one way to give a run its share of the Graph request budget,
for the inputs and the response actions alike (the actions once kept a copy that did not see the
inputs reaching a tenant through their ``tenants`` field)."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Dict, Iterator

import pytest

from defender_lineage_core.budget import BUDGET_ENV, RequestBudget, input_share, reset_registry
from defender_lineage_core.clouds import resolve
from defender_lineage_core.settings import Account
from defender_lineage_splunk.clients import attach_budget

CUSTOMER = "9b0e4f1a-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
PER_MINUTE = 150.0


class FakeSplunk:
    """The SplunkSettings reads attach_budget makes."""

    def __init__(self, inputs: Dict[str, Any], accounts: Dict[str, Any], tenants: Dict[str, Any]) -> None:
        self.inputs, self.account_stanzas, self.tenant_entries = inputs, accounts, tenants
        self.broken = False

    def input_stanzas(self) -> Dict[str, Any]:
        if self.broken:
            raise ConnectionError("splunkd is restarting")
        return self.inputs

    def accounts(self) -> Dict[str, Any]:
        return self.account_stanzas

    def tenants_used_by(self, stanzas: Dict[str, Any]) -> Dict[str, Any]:
        return self.tenant_entries if any(f.get("tenants") for f in stanzas.values()) else {}


@pytest.fixture(autouse=True)
def budget_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv(BUDGET_ENV, str(PER_MINUTE))
    reset_registry()
    yield
    reset_registry()


def customer_account() -> Account:
    return Account("msp", CUSTOMER, "c1", "client_secret", resolve("global", "", ""), client_secret="s")


def splunk() -> FakeSplunk:
    return FakeSplunk(
        inputs={
            "defender_alerts://all": {"account": "msp", "tenants": "*"},  # reaches CUSTOMER through the Tenants tab
            "defender_incidents://home": {"account": "msp"},  # the account's own tenant only
        },
        accounts={"msp": {"tenant_id": "home", "client_id": "c1"}},
        tenants={"a": {"tenant_id": CUSTOMER, "account": "msp"}},
    )


def test_a_response_action_shares_with_the_inputs_reaching_its_tenant_through_tenants(caplog):
    client = SimpleNamespace(budget=None)
    with caplog.at_level(logging.INFO):
        attach_budget(client, splunk(), customer_account(), "response_action", logging.getLogger("t"), 2)  # type: ignore[arg-type]
    # The action and defender_alerts://all: two sharers of CUSTOMER's budget (the copy counted one).
    assert "request_budget input=response_action" in caplog.text and "sharing_inputs=2" in caplog.text
    assert client.budget.per_minute_bound() == RequestBudget.for_share(input_share(PER_MINUTE, 2)).per_minute_bound()


def test_when_splunkd_cannot_list_the_inputs_the_caller_says_how_many_share(caplog):
    broken = splunk()
    broken.broken = True
    client = SimpleNamespace(budget=None)
    with caplog.at_level(logging.INFO):
        attach_budget(client, broken, customer_account(), "response_action", logging.getLogger("t"), 2)  # type: ignore[arg-type]
    assert "budget_inputs_unknown input=response_action" in caplog.text and "assuming 2 sharers" in caplog.text
    assert "sharing_inputs=2" in caplog.text


def test_no_budget_when_it_is_turned_off(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "0")
    client = SimpleNamespace(budget=None)
    attach_budget(client, splunk(), customer_account(), "defender_alerts://all", logging.getLogger("t"))  # type: ignore[arg-type]
    assert client.budget is None
