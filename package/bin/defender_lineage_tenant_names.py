"""``tenant_name`` for ``defenderlineage``: the tenant's label on the Tenants tab, from the tenants
lookup (KV store collection ``ta_defender_lineage_tenants``, kept in step with the tab by the add-on:
bin/defender_lineage_splunk/tenant_lookup.py).

The collection is read once per search, at the first event that names a tenant (a search over events
without one never asks), and kept for the whole search: a Tenants tab holds a few thousand rows at
most. If it cannot be read, the search gets one warning and tenant_name stays empty; nothing fails.
A tenant the tab does not know (a single-tenant install has no rows) gets an empty tenant_name.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

COLLECTION = "ta_defender_lineage_tenants"
TENANT_NAME = "tenant_name"  # the output field (DESIGN.md: the contract's one new field for tenants)
TENANTS_WARNING = (
    "defenderlineage: the tenants lookup (KV store collection {collection}) could not be read ({reason}). "
    "tenant_name stays empty for this search."
)


class TenantNames:
    """tenant id -> tenant_name for one search."""

    def __init__(self, searchinfo: Mapping[str, Any], warn: Callable[[str], None]) -> None:
        self._session_key = str(searchinfo.get("session_key") or "")
        self._splunkd_uri = str(searchinfo.get("splunkd_uri") or "")
        self._warn = warn
        self._names: Optional[Dict[str, str]] = None
        self._last = ("", "")  # (tenant id as the event wrote it, its name): most chunks name one tenant

    def _load(self) -> Dict[str, str]:
        try:
            from defender_lineage_splunk.tenant_lookup import TenantLookup

            return TenantLookup(self._session_key, self._splunkd_uri).names()
        except Exception as error:  # unreachable, KV store down, no splunklib: the events must still pass
            self._warn(TENANTS_WARNING.format(collection=COLLECTION, reason=error))
            return {}

    def name_for(self, tenant_id: str) -> str:
        if not tenant_id:
            return ""
        if tenant_id == self._last[0]:
            return self._last[1]
        if self._names is None:
            self._names = self._load()
        name = self._names.get(tenant_id.lower(), "")
        self._last = (tenant_id, name)
        return name
