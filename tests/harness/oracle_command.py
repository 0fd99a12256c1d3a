"""The splunklib oracle: ``defenderlineage`` as it was before the project's own protocol layer.

The same lineage and incident-store logic (``defender_lineage_core``) driven by splunklib's
``StreamingCommand``. tests/integration/test_scp_oracle.py copies it into ``bin/`` of a copy of the
built add-on and checks that ``defender_lineage_scp`` gives the same records and metadata as this,
on every input splunklib can read. Not shipped.
"""

from __future__ import annotations

# isort: off
import import_declare_test  # noqa: F401  # must come first: puts the app's lib/ on sys.path

# isort: on

import sys
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

from defender_lineage_tenant_names import TENANT_NAME, TenantNames
from splunklib.searchcommands import Configuration, Option, StreamingCommand, dispatch, validators

from defender_lineage_core.incident_store import (
    COLLECTION,
    Doc,
    IncidentCache,
    StoreUnavailable,
    empty_output_fields,
    enrich,
    request_keys,
)
from defender_lineage_core.lineage import place

STORE_WARNING = (
    "defenderlineage: the incident store (KV store collection {collection}) could not be read ({reason}). "
    "Events written from then on are placed from their own fields only; their incident_* fields stay empty."
)


@Configuration(distributed=False)
class DefenderLineageOracle(StreamingCommand):
    """``... | defenderlineage [incidents=<bool>]``"""

    incidents = Option(
        doc="Enrich events from the incident store (default true).",
        require=False,
        default=True,
        validate=validators.Boolean(),
    )

    def __init__(self) -> None:
        super().__init__()
        self._cache: Optional[IncidentCache] = None
        self._warned = False
        # seconds waiting for the KV store, requests, keys asked, documents received
        self._fetch_stats: List[float] = [0.0, 0, 0, 0]
        self._tenant_names: Optional[TenantNames] = None

    def _incident_cache(self) -> Optional[IncidentCache]:
        if not self.incidents:
            return None
        if self._cache is None:
            self._cache = IncidentCache(self._timed(self._fetcher()))
        return self._cache

    def _timed(self, fetch: Any) -> Any:
        """``fetch``, counting its time, keys and documents for the job inspector (metric.incident_store)."""

        def timed(incident_keys: Sequence[str], alert_keys: Sequence[str]) -> List[Doc]:
            started = time.perf_counter()
            try:
                docs: List[Doc] = fetch(incident_keys, alert_keys)
            finally:
                self._fetch_stats[0] += time.perf_counter() - started
                self._fetch_stats[1] += 1
                self._fetch_stats[2] += len(incident_keys) + len(alert_keys)
            self._fetch_stats[3] += len(docs)
            return docs

        return timed

    def _fetcher(self) -> Any:
        info = getattr(self._metadata, "searchinfo", None)
        session_key = getattr(info, "session_key", None) or ""
        splunkd_uri = getattr(info, "splunkd_uri", None) or ""
        try:
            from defender_lineage_kvstore import IncidentStoreClient

            return IncidentStoreClient(session_key, splunkd_uri).fetch
        except Exception as error:  # bad URI, splunklib missing: reported on the first fetch
            failure = error

            def unavailable(incident_keys: Sequence[str], alert_keys: Sequence[str]) -> List[Doc]:
                raise failure

            return unavailable

    def _prefetch(self, cache: IncidentCache, placed: List[Dict[str, Any]]) -> None:
        incident_keys, alert_keys = set(), set()
        for fields in placed:
            ikey, akey = request_keys(fields)
            if ikey:
                incident_keys.add(ikey)
            elif akey:
                alert_keys.add(akey)
        try:
            cache.prefetch(incident_keys, alert_keys)
        except Exception as error:  # StoreUnavailable, or a bug: the events must still pass
            if not isinstance(error, StoreUnavailable):
                cache.failure = f"{type(error).__name__}: {error}"[:300]
            if not self._warned:
                self._warned = True
                self.write_warning(STORE_WARNING.format(collection=COLLECTION, reason=error))
                self.logger.warning("incident store unavailable: %s", error)

    def stream(self, records: Iterable[Dict[str, Any]]) -> Iterator[Dict[str, Any]]:
        # splunklib calls stream() once per chunk: batch the chunk's store lookups before any output.
        chunk = list(records)
        placed = [place(record) for record in chunk]
        if self._tenant_names is None:
            info = self.metadata.searchinfo
            searchinfo = {"session_key": info.session_key, "splunkd_uri": info.splunkd_uri}
            self._tenant_names = TenantNames(searchinfo, self.write_warning)
        for fields in placed:  # after the lineage fields, before the incident's (the command's column order)
            fields[TENANT_NAME] = self._tenant_names.name_for(fields["tenant_id"])
        cache = self._incident_cache()
        if cache is not None and cache.available:
            self._prefetch(cache, placed)
        if cache is not None:
            self.write_metric("incident_store", list(self._fetch_stats))
        if cache is not None and not cache.available:
            cache = None
        for record, fields in zip(chunk, placed):
            try:
                extra = enrich(fields, cache)
            except Exception as error:  # a bug must not stop the search; say so on the event
                extra = empty_output_fields()
                note = f"incident enrichment failed: {type(error).__name__}"
                warning = fields["lineage_warning"]
                fields["lineage_warning"] = f"{warning}; {note}" if warning else note
            # add_field, not item assignment: splunklib fixes a chunk's columns at its first
            # record and drops fields first set later unless they are registered this way.
            for name, value in fields.items():
                self.add_field(record, name, value)
            for name, value in extra.items():
                self.add_field(record, name, value)
            yield record


dispatch(DefenderLineageOracle, sys.argv, sys.stdin, sys.stdout, __name__)
