"""The incident store's Splunk side: moves ``defender_lineage_core.incident_store`` documents in and
out of the KV store collection ``ta_defender_lineage_incidents`` through splunkd's REST API.

Thin on purpose: one request per ``fetch`` or ``find`` (more only when splunkd cut the answer at
``max_rows_per_query``) and one ``batch_save`` per 1000 documents; what the documents are and how
they are read is in the core module. The session key is only ever sent in
the Authorization header; it is not logged and not part of any error text raised here.
"""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from defender_lineage_splunkd_json import SplunkdJson

from defender_lineage_core.incident_store import COLLECTION, Doc, Term, store_query, terms_query

APP = "TA-defender-lineage"
BATCH_SAVE_LIMIT = 1000  # limits.conf [kvstore] max_documents_per_batch_save
# A GET query longer than this goes as a POST to batch_find instead (URL length limits).
MAX_GET_QUERY_CHARS = 6000
# limits.conf [kvstore] max_rows_per_query (default 50000): splunkd returns at most this many
# documents for one query and says nothing of the rest, so an answer this long may be cut.
MAX_ROWS_PER_QUERY = 50_000
DEFAULT_TIMEOUT = 10.0


def _json_body(value: Any) -> memoryview:
    """A request body for splunklib that it sends as is (batch_save, batch_find).

    splunklib's ``post`` json-decodes every body (``mask_sensitive_data``) to mask secrets for a
    debug log line, whatever the log level: for a 1000-document ``batch_save`` that is a second
    decode as costly as the encode. It cannot decode a memoryview and leaves it alone; http.client
    sends one like bytes. ASCII (``ensure_ascii``), so the bytes are the JSON text.
    """
    return memoryview(json.dumps(value, separators=(",", ":")).encode("ascii"))


class IncidentStoreError(Exception):
    """The KV store did not answer as expected (unreachable, unavailable, refused, bad reply)."""


class IncidentStoreClient:
    """``fetch``, ``find`` and ``save`` for the incident store, as the app's ``nobody`` namespace sees it."""

    def __init__(
        self,
        session_key: str,
        splunkd_uri: str,
        app: str = APP,
        collection: str = COLLECTION,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> None:
        self.app = app
        self.path = f"storage/collections/data/{collection}"
        self._splunkd = SplunkdJson(session_key, splunkd_uri, app, timeout, IncidentStoreError, "KV store")

    def __repr__(self) -> str:  # never show the session key
        return f"IncidentStoreClient(app={self.app!r}, path={self.path!r})"

    @property
    def requests(self) -> int:
        """Requests made to splunkd so far."""
        return self._splunkd.requests

    def _call(self, method: str, sub: str, **kwargs: Any) -> Any:
        return self._splunkd.call(method, self.path + sub, **kwargs)

    def fetch(self, incident_keys: Sequence[str], alert_keys: Sequence[str] = ()) -> List[Doc]:
        """All documents naming any of these incident keys or alert keys: ONE request, unless
        splunkd cut the answer at ``max_rows_per_query``; then the keys are asked again in halves
        (a single key's documents page by ``_key``), so no document is silently left out."""
        incidents = sorted({k for k in incident_keys if k})
        alerts = sorted({k for k in alert_keys if k})
        query = store_query(incidents, alerts)
        if not query:
            return []
        docs = self._find(query)
        if len(docs) < MAX_ROWS_PER_QUERY:
            return docs
        if len(incidents) + len(alerts) == 1:
            return self._pages(query, docs)
        half_i, half_a = (len(incidents) + 1) // 2, (len(alerts) + 1) // 2
        return self.fetch(incidents[:half_i], alerts[:half_a]) + self.fetch(incidents[half_i:], alerts[half_a:])

    def find(self, terms: Sequence[Term]) -> List[Doc]:
        """All documents matching any of these terms: ONE request, unless splunkd cut the answer at
        ``max_rows_per_query``; then every term's keys are asked again in halves, as :meth:`fetch`."""
        terms = [term for term in terms if term.size]
        query = terms_query(terms)
        if not query:
            return []
        docs = self._find(query)
        if len(docs) < MAX_ROWS_PER_QUERY:
            return docs
        if sum(term.size for term in terms) == 1:
            return self._pages(query, docs)
        halves = [term.halves() for term in terms]
        return self.find([first for first, _ in halves]) + self.find([second for _, second in halves])

    def _pages(self, query: Dict[str, Any], first: List[Doc]) -> List[Doc]:
        """Every document of a query one key matches beyond ``max_rows_per_query``, page by page."""
        docs: List[Doc] = []
        page = first
        while len(page) >= MAX_ROWS_PER_QUERY:
            page = self._find(query, sort="_key", skip=len(docs), limit=MAX_ROWS_PER_QUERY)
            docs.extend(page)
        return docs

    def _find(self, query: Dict[str, Any], **paging: Any) -> List[Doc]:
        text = json.dumps(query, separators=(",", ":"))
        if len(text) <= MAX_GET_QUERY_CHARS:
            result = self._call("GET", "", query=text, output_mode="json", **paging)
        else:
            # A query of 2,000 keys and their listed alerts is ~0.5 MB: as a memoryview, splunklib
            # does not json-decode it to mask a debug line (_json_body).
            batches = self._call("POST", "/batch_find", body=_json_body([{"query": query, **paging}]))
            result = batches[0] if isinstance(batches, list) and batches else []
        if not isinstance(result, list):
            raise IncidentStoreError("KV store query did not return a list")
        return [doc for doc in result if isinstance(doc, dict)]

    def save(self, docs: Iterable[Mapping[str, Any]]) -> int:
        """Upsert documents by ``_key`` (``batch_save``, at most 1000 per request); the number saved."""
        pending = [doc if isinstance(doc, dict) else dict(doc) for doc in docs]
        for start in range(0, len(pending), BATCH_SAVE_LIMIT):
            batch = pending[start : start + BATCH_SAVE_LIMIT]
            self._call("POST", "/batch_save", body=_json_body(batch))
        return len(pending)
