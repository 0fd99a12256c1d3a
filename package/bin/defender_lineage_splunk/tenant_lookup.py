"""The tenants lookup: the KV store collection behind ``tenant_name`` at search time.

Splunk adds ``tenant_name`` to every event of this add-on through an automatic lookup (props.conf
``LOOKUP-tenant_name``, transforms.conf ``[ta_defender_lineage_tenants_lookup]``), and
``defenderlineage`` reads the same collection. It must follow the Tenants tab without anyone running a
search, so two writers keep it in step with ``ta_defender_lineage_tenant.conf``:

* the Tenants-tab REST handler, on create, edit and delete (``sync_from_entries`` with the change);
* every input run (``reconcile_from_conf``), which covers conf files a deployer pushed or someone
  edited by hand. It uses the run's one read of the conf file, asks splunkd for the collection and
  writes only what differs.

The rows are ``defender_lineage_core.tenants.tenant_name_rows``: one per tenant id, ``_key`` = the
tenant id. The session key is only sent in the Authorization header, never logged or in an error.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple

from defender_lineage_splunkd_json import SplunkdJson

from defender_lineage_core.tenants import tenant_name_rows

from .app import APP, TENANT_CONF, TENANTS_COLLECTION

if TYPE_CHECKING:  # splunkd.py needs solnlib (the built lib/); the Tenants handler imports this module too
    from .splunkd import SplunkSettings

TIMEOUT = 10.0
ROW_FIELDS = ("tenant_id", "tenant_name", "account")


class TenantLookupError(Exception):
    """splunkd did not answer as expected (unreachable, KV store unavailable, refused, bad reply)."""


class TenantLookup:
    """The Tenants-tab conf file and the tenants collection, as the app's ``nobody`` namespace sees them."""

    def __init__(self, session_key: str, server_uri: str, timeout: Optional[float] = TIMEOUT) -> None:
        self._splunkd = SplunkdJson(session_key, server_uri, APP, timeout, TenantLookupError, "splunkd", name_path=True)

    def __repr__(self) -> str:  # never show the session key
        return f"TenantLookup(app={APP!r}, collection={TENANTS_COLLECTION!r})"

    @property
    def requests(self) -> int:
        """Requests made to splunkd so far."""
        return self._splunkd.requests

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._splunkd.call(method, path, **kwargs)

    def conf_entries(self) -> Dict[str, Dict[str, Any]]:
        """Tenants-tab entries by label, this app's only (as solnlib's ``get_all(only_current_app=True)``);
        none when the conf file does not exist yet."""
        try:
            answer = self._call("GET", f"configs/conf-{TENANT_CONF}", count=0, output_mode="json")
        except TenantLookupError as error:
            if " 404 " in str(error):  # no tenant was ever saved
                return {}
            raise
        entries: Dict[str, Dict[str, Any]] = {}
        for entry in (answer or {}).get("entry") or []:
            content = entry.get("content") or {}
            if content.get("eai:appName", APP) != APP or entry.get("name") == "default":
                continue
            entries[str(entry.get("name"))] = dict(content)
        return entries

    def rows(self) -> List[Dict[str, Any]]:
        """Every row of the tenants collection."""
        answer = self._call("GET", f"storage/collections/data/{TENANTS_COLLECTION}", output_mode="json")
        if not isinstance(answer, list):
            raise TenantLookupError("the tenants collection did not answer with a list")
        return [row for row in answer if isinstance(row, dict)]

    def names(self) -> Dict[str, str]:
        """tenant id (lowercase) -> tenant_name, for ``defenderlineage``: one request."""
        return {
            str(row.get("tenant_id") or "").lower(): str(row.get("tenant_name") or "")
            for row in self.rows()
            if row.get("tenant_id") and row.get("tenant_name")
        }

    def sync(self, entries: Mapping[str, Mapping[str, Any]]) -> Tuple[int, int]:
        """Make the collection hold exactly the rows of ``entries``: (rows saved, rows deleted)."""
        wanted = tenant_name_rows(entries)
        current = {str(row.get("_key")): row for row in self.rows()}
        changed = [
            row
            for key, row in wanted.items()
            if key not in current or any(str(current[key].get(f) or "") != row[f] for f in ROW_FIELDS)
        ]
        stale = sorted(key for key in current if key not in wanted)
        if changed:  # a Tenants tab holds far fewer than batch_save's 1000 documents per request
            for start in range(0, len(changed), 1000):
                body = json.dumps(changed[start : start + 1000], separators=(",", ":"))
                self._call("POST", f"storage/collections/data/{TENANTS_COLLECTION}/batch_save", body=body)
        if stale:
            query = json.dumps({"_key": {"$in": stale}}, separators=(",", ":"))
            self._call("DELETE", f"storage/collections/data/{TENANTS_COLLECTION}", query=query)
        return len(changed), len(stale)


def reconcile_from_conf(splunk: SplunkSettings, logger: logging.Logger) -> Optional[Tuple[int, int]]:
    """Bring the tenants lookup in step with the conf file, once per input run. The entries are the
    run's own read of the Tenants tab (``SplunkSettings.tenants``, kept for the run, so a run over
    tenants reads the conf file once). A failure is a warning: collection goes on, and the next run
    tries again."""
    try:
        entries = splunk.tenants()
        lookup = TenantLookup(splunk.session_key, f"{splunk.scheme}://{splunk.host}:{splunk.port}")
        saved, deleted = lookup.sync(entries)
    except Exception as error:  # never stop collection for the lookup
        logger.warning('tenant_lookup_sync status=failed error_type=%s message="%s"', type(error).__name__, error)
        return None
    if saved or deleted:
        logger.info("tenant_lookup_sync status=ok saved=%d deleted=%d", saved, deleted)
    return saved, deleted


def sync_with_change(
    session_key: str,
    server_uri: str,
    label: str,
    values: Optional[Mapping[str, Any]],
    logger: logging.Logger,
) -> None:
    """After the Tenants tab saved (``values``) or deleted (``None``) the entry ``label``: the conf file
    as splunkd has it, with this change applied over it, into the collection. A failure is a warning
    (the save stands; the next input run reconciles)."""
    try:
        lookup = TenantLookup(session_key, server_uri)
        entries = lookup.conf_entries()
        if values is None:
            entries.pop(label, None)
        else:
            entries[label] = {**entries.get(label, {}), **{k: v for k, v in values.items() if v is not None}}
        saved, deleted = lookup.sync(entries)
    except Exception as error:
        logger.warning(
            'tenant_lookup_sync tenant=%s status=failed error_type=%s message="%s"',
            label,
            type(error).__name__,
            error,
        )
        return
    logger.info("tenant_lookup_sync tenant=%s status=ok saved=%d deleted=%d", label, saved, deleted)
