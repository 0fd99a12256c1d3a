"""One registry entry per input kind, and what Splunk-side code derives from it: the event's
``source``, the checkpoint key, and which inputs.conf stanzas share a Graph budget.

The core knows Graph resources and budgets; which stanzas exist and how they are named is Splunk's
business, so it is counted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional

from defender_lineage_core import hunting
from defender_lineage_core.collector import ALERTS, INCIDENTS
from defender_lineage_core.settings import is_true


@dataclass(frozen=True)
class InputKind:
    name: str  # the inputs.conf scheme, e.g. defender_alerts
    sourcetype: str
    resource: str  # the Graph resource under /security/ named in the event's source
    budget_family: str  # "graph": the app-and-tenant budget; "hunting": the tenant's hunting quota too


INPUT_KINDS: Dict[str, InputKind] = {
    kind.name: kind
    for kind in (
        # The sourcetypes are still defined beside the core's resource specs (the collector's tests build
        # specs with them); this registry is where the Splunk side reads them.
        InputKind("defender_alerts", ALERTS.sourcetype, ALERTS.name, "graph"),
        InputKind("defender_incidents", INCIDENTS.sourcetype, INCIDENTS.name, "graph"),
        InputKind("defender_hunting", hunting.SOURCETYPE, hunting.RESOURCE, "hunting"),
    )
}


def source_for(tenant_id: str, resource: str) -> str:
    """``source`` of an event: tenant and Graph resource (the lineage command reads the tenant back)."""
    return f"ms_graph://{tenant_id}/security/{resource}"


def checkpoint_key(input_type: str, input_name: str) -> str:
    """KV store key of an input's cursor; one per input, whatever its account."""
    return f"{input_type}__{re.sub(r'[^A-Za-z0-9_.-]', '_', input_name)}"


def count_sharing_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    tenant_id: str,
    client_id: str,
    own_stanza: str,
) -> int:
    """Enabled inputs of this add-on whose account is the same app registration in the same tenant.

    ``input_stanzas``: inputs.conf stanzas by name (``defender_alerts://x``); ``accounts``: account
    stanzas by name (only ``tenant_id`` and ``client_id`` are read). The running input always counts,
    even when splunkd did not list it, so the result is at least 1.
    """
    return count_enabled_inputs(input_stanzas, accounts, INPUT_KINDS, own_stanza, tenant_id, client_id)


def count_hunting_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    tenant_id: str,
    own_stanza: str,
) -> int:
    """Enabled ``defender_hunting`` inputs whose account is in this tenant (any app registration):
    the hunting quota is the tenant's. At least 1 (the running input)."""
    hunting = [kind.name for kind in INPUT_KINDS.values() if kind.budget_family == "hunting"]
    return count_enabled_inputs(input_stanzas, accounts, hunting, own_stanza, tenant_id)


def count_enabled_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    input_types: Iterable[str],
    own_stanza: str,
    tenant_id: str,
    client_id: Optional[str] = None,
) -> int:
    """Enabled inputs of ``input_types`` whose account is in ``tenant_id`` (and, when ``client_id`` is
    given, is that app registration); at least 1, the running input ``own_stanza``."""

    def same(value: object, wanted: str) -> bool:
        return str(value or "").strip().lower() == wanted.strip().lower()

    owners = {
        name
        for name, fields in accounts.items()
        if same(fields.get("tenant_id"), tenant_id) and (client_id is None or same(fields.get("client_id"), client_id))
    }
    types = frozenset(input_types)
    sharing = {own_stanza}
    for name, fields in input_stanzas.items():
        if "://" not in name or name.split("://", 1)[0] not in types:
            continue
        if is_true(fields.get("disabled")):
            continue
        if str(fields.get("account") or "").strip() in owners:
            sharing.add(name)
    return len(sharing)
