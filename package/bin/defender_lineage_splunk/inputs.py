"""One registry entry per input kind, and what Splunk-side code derives from it: the event's
``source``, the checkpoint key, and which inputs.conf stanzas share a Graph budget.

The core knows Graph resources and budgets; which stanzas exist and how they are named is Splunk's
business, so it is counted here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Mapping, Optional, Set

from defender_lineage_core import hunting
from defender_lineage_core.collector import ALERTS, INCIDENTS
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.settings import is_true
from defender_lineage_core.tenants import parse_tenants_field, select_tenants


@dataclass(frozen=True)
class InputKind:
    name: str  # the inputs.conf scheme, e.g. defender_alerts
    sourcetype: str  # product API: props.conf, eventtypes and users' searches name it
    resource: str  # the Graph resource under /security/ named in the event's source
    budget_family: str  # "graph": the app-and-tenant budget; "hunting": the tenant's hunting quota too


# The core knows Graph resources only; what Splunk calls their events is decided here, once
# (tests/unit/test_core_is_graph_only.py keeps sourcetypes out of the core).
INPUT_KINDS: Dict[str, InputKind] = {
    kind.name: kind
    for kind in (
        InputKind("defender_alerts", "ms:defender:graph:alert", ALERTS.name, "graph"),
        InputKind("defender_incidents", "ms:defender:graph:incident", INCIDENTS.name, "graph"),
        InputKind("defender_hunting", "ms:defender:graph:hunting", hunting.RESOURCE, "hunting"),
    )
}


def source_for(tenant_id: str, resource: str) -> str:
    """``source`` of an event: tenant and Graph resource (the lineage command reads the tenant back)."""
    return f"ms_graph://{tenant_id}/security/{resource}"


def checkpoint_key(input_type: str, input_name: str, tenant_id: str = "") -> str:
    """KV store key of an input's cursor: one per input for the account's own tenant (``tenants`` empty,
    the key inputs had before tenants existed), one per input and tenant id for Tenants-tab entries (a
    renamed label keeps its cursor)."""
    key = f"{input_type}__{re.sub(r'[^A-Za-z0-9_.-]', '_', input_name)}"
    return f"{key}__{tenant_id.strip().lower()}" if tenant_id else key


def tenant_cursor_pattern(input_type: str, input_name: str) -> str:
    """A KV store ``$regex`` matching the per-tenant cursor keys of one input and of no other input.

    Input names are letters, digits and ``_`` (they may hold ``__``), so the tenant part is pinned to a
    GUID, which no input name can contain (``-``)."""
    guid = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    return f"^{re.escape(checkpoint_key(input_type, input_name))}__{guid}$"


def count_sharing_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    tenant_id: str,
    client_id: str,
    own_stanza: str,
    tenant_entries: Optional[Mapping[str, Mapping[str, object]]] = None,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> int:
    """Enabled inputs of this add-on whose account is the same app registration in the same tenant.

    ``input_stanzas``: inputs.conf stanzas by name (``defender_alerts://x``); ``accounts``: account
    stanzas by name (only ``tenant_id`` and ``client_id`` are read); ``tenant_entries``: Tenants-tab
    entries by label, for inputs whose ``tenants`` field reaches customer tenants. The running input
    always counts, even when splunkd did not list it, so the result is at least 1.
    ``stanza_tenants``: a memo of the tenant ids each stanza reaches, kept by a run that asks for each
    of its tenants (with ``*`` over N entries, asking afresh each time costs N x N).
    """
    return count_enabled_inputs(
        input_stanzas, accounts, INPUT_KINDS, own_stanza, tenant_id, client_id, tenant_entries or {}, stanza_tenants
    )


def count_hunting_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    tenant_id: str,
    own_stanza: str,
    tenant_entries: Optional[Mapping[str, Mapping[str, object]]] = None,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> int:
    """Enabled ``defender_hunting`` inputs that query this tenant (any app registration): the hunting
    quota is the tenant's. At least 1 (the running input). ``stanza_tenants``: as count_sharing_inputs."""
    hunting = [kind.name for kind in INPUT_KINDS.values() if kind.budget_family == "hunting"]
    return count_enabled_inputs(
        input_stanzas, accounts, hunting, own_stanza, tenant_id, None, tenant_entries or {}, stanza_tenants
    )


def stanza_tenant_ids(
    fields: Mapping[str, object],
    account_fields: Mapping[str, object],
    tenant_entries: Mapping[str, Mapping[str, object]],
) -> Set[str]:
    """Tenant ids an input stanza collects: its account's own tenant when ``tenants`` is empty, else the
    Tenants-tab entries it selects. A malformed ``tenants`` selects nothing (the input refuses to run)."""
    try:
        wanted = parse_tenants_field(fields.get("tenants"))
    except ConfigError:
        return set()
    if wanted is None:
        return {str(account_fields.get("tenant_id") or "").strip().lower()}
    account = str(fields.get("account") or "").strip()
    chosen, _ = select_tenants(wanted, account, tenant_entries)
    return {tenant.tenant_id for tenant in chosen}


def count_enabled_inputs(
    input_stanzas: Mapping[str, Mapping[str, object]],
    accounts: Mapping[str, Mapping[str, object]],
    input_types: Iterable[str],
    own_stanza: str,
    tenant_id: str,
    client_id: Optional[str] = None,
    tenant_entries: Optional[Mapping[str, Mapping[str, object]]] = None,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> int:
    """Enabled inputs of ``input_types`` that collect ``tenant_id`` (through their account's own tenant or
    their ``tenants`` field) and, when ``client_id`` is given, with that app registration; at least 1, the
    running input ``own_stanza``."""
    wanted_tenant = tenant_id.strip().lower()
    wanted_client = (client_id or "").strip().lower()
    types = frozenset(input_types)
    sharing = {own_stanza}
    for name, fields in input_stanzas.items():
        if "://" not in name or name.split("://", 1)[0] not in types:
            continue
        if is_true(fields.get("disabled")):
            continue
        account_fields = accounts.get(str(fields.get("account") or "").strip())
        if account_fields is None:
            continue
        if client_id is not None and str(account_fields.get("client_id") or "").strip().lower() != wanted_client:
            continue
        known = stanza_tenants.get(name) if stanza_tenants is not None else None
        if known is None:
            known = stanza_tenant_ids(fields, account_fields, tenant_entries or {})
            if stanza_tenants is not None:  # tenants collected at once may both compute it: same answer
                stanza_tenants[name] = known
        if wanted_tenant in known:
            sharing.add(name)
    return len(sharing)
