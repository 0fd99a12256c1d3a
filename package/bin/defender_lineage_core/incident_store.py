"""The incident store: documents in a KV store collection, and the view the search command reads.

Plain Python; the Splunk side (``defender_lineage_kvstore``) only moves these documents.

**Documents.** Two shapes, each with a fixed set of fields (strings, "" when Graph had no value):

* ``doc_type = incident`` (``INCIDENT_DOC_FIELDS``): one incident's summary (title, severity,
  status, classification, determination, assignment, times, web URL, redirect target);
* ``doc_type = alert`` (``ALERT_DOC_FIELDS``): what one alert contributes to its incident (alert
  id, canonical service and detection source).

``DOC_FIELDS`` is their union: the collection's and the lookup's fields, and what the rebuild search
(``savedsearches.conf``) writes for both shapes, empty where a field does not apply. Readers treat a
missing field as empty. Alert documents, by far the most numerous, leave out the nine summary fields
that never apply to them: about a quarter less to encode, send and keep in the KV store.

Both carry ``incident_key = <tenant>:<incident id>`` (Defender incident ids are unique only within
a tenant), alert documents also ``alert_key = <tenant>:<alert id>``; keys are lower case. A summary
written from an incident with its alerts expanded also lists them (``SUMMARY_ALERT_FIELDS``): the
reader takes each listed alert as an alert document dated by the summary, so it needs no alert
document older than the summary (issue 18: one document per incident instead of one per alert and
writer). ``store_query`` (every document of some keys) is what a reader without that knowledge
asks; :class:`IncidentCache` with ``find`` asks with :class:`Term` s in two requests instead.

**Writers never race.** The alerts input, the incidents input (its expanded alerts) and the rebuild
search run as separate processes. Instead of read-modify-write (which loses updates between them),
each writer owns its own documents: ``_key = <doc_type>:<incident_key or alert_key>:<origin>`` with
``origin`` one of ``alerts``, ``incidents``, ``rebuild``. A writer only upserts whole documents it
owns (no read, nothing merged), and a writer sees versions in order (the collectors page by
``lastUpdateDateTime``; the rebuild keeps the latest indexed version per key), so its own documents
only move forward. Readers take, per incident and per alert, the newest document of any origin,
comparing ``lastUpdateDateTime`` as instants: an older version never hides a newer one, whichever
writer was last. An incident needs at most two summary documents and an alert at most three.

**Reading.** :class:`IncidentCache` holds what a search has fetched: the command collects a chunk's
keys, :meth:`IncidentCache.prefetch` asks for the unknown ones (their summaries, then the alert
versions newer than them: a KV store query cannot compare one document with another, so the second
request needs the first's answer), and every later event naming a known (or known-missing)
incident costs nothing. Merge chains (``status =
redirected`` with ``redirectIncidentId``) are followed to the survivor; only when a chain leads to an
incident not fetched yet is there a follow-up request (bounded, rare), and a cycle stops the walk.
A summary that lists its alerts, is its incident's newest and names no alert the cache knows (the
usual case) is read lean: kept as its lists, its view made from them, no alert indexed. Its alerts
are indexed as the eager reading indexes them once anything reads or changes them (an alert
document of one of them or naming the incident, a summary listing one of them or of the incident
unless older and listing none, ``incident_of_alert``, a hunting row's alert), so the cache answers
the same (a differential test holds the two readings equal).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Generator,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from defender_lineage_core import taxonomy
from defender_lineage_core.timestamps import parse_instant

COLLECTION = "ta_defender_lineage_incidents"
LOOKUP = "ta_defender_lineage_incidents_lookup"

INCIDENT = "incident"
ALERT = "alert"
ORIGIN_ALERTS = "alerts"
ORIGIN_INCIDENTS = "incidents"
ORIGIN_REBUILD = "rebuild"
ORIGINS: Tuple[str, ...] = (ORIGIN_ALERTS, ORIGIN_INCIDENTS, ORIGIN_REBUILD)

# Every field a document may have, in the order the lookup and the rebuild search list them.
DOC_FIELDS: Tuple[str, ...] = (
    "_key",
    "doc_type",
    "origin",
    "tenant_id",
    "incident_key",
    "incident_id",
    "alert_key",
    "alert_id",
    "last_update_date_time",
    "title",
    "severity",
    "status",
    "classification",
    "determination",
    "assigned_to",
    "created_date_time",
    "incident_web_url",
    "redirect_incident_id",
    "service_source",
    "detection_source",
)
# Graph incident property -> document field, for summaries.
SUMMARY_FROM_GRAPH: Tuple[Tuple[str, str], ...] = (
    ("displayName", "title"),
    ("severity", "severity"),
    ("status", "status"),
    ("classification", "classification"),
    ("determination", "determination"),
    ("assignedTo", "assigned_to"),
    ("createdDateTime", "created_date_time"),
    ("lastUpdateDateTime", "last_update_date_time"),
    ("incidentWebUrl", "incident_web_url"),
    ("redirectIncidentId", "redirect_incident_id"),
)
# The fields of each shape the inputs write (in DOC_FIELDS order): an alert's contribution has no
# incident-summary fields, an incident's summary no alert fields.
_ALERT_ONLY = frozenset({"alert_key", "alert_id", "service_source", "detection_source"})
_SUMMARY_ONLY = frozenset(f for _, f in SUMMARY_FROM_GRAPH) - {"last_update_date_time"}
ALERT_DOC_FIELDS: Tuple[str, ...] = tuple(f for f in DOC_FIELDS if f not in _SUMMARY_ONLY)
INCIDENT_DOC_FIELDS: Tuple[str, ...] = tuple(f for f in DOC_FIELDS if f not in _ALERT_ONLY)
# What a summary written from an incident with its alerts expanded also carries: its alerts, as
# parallel lists (one item per alert: id, canonical service, canonical detection). Not lookup
# fields (the rebuild search writes summaries without them): a summary that lacks them is read as
# before, with the alert documents of its incident.
SUMMARY_ALERT_FIELDS: Tuple[str, ...] = ("alert_ids", "alert_service_sources", "alert_detection_sources")

# The contract's enrichment fields (DESIGN.md), in output order.
INCIDENT_OUTPUT_FIELDS: Tuple[str, ...] = (
    "incident_title",
    "incident_severity",
    "incident_status",
    "incident_alert_count",
    "incident_service_sources",
    "incident_detection_sources",
    "incident_cross_product",
)
# Service values that say nothing about which product raised an alert: not counted for cross_product.
_NOT_A_PRODUCT = frozenset(("", "unknown", "unknownFutureValue"))
REDIRECTED = "redirected"
MAX_CHAIN = 16  # merges followed at most; also the most follow-up requests one prefetch makes
MAX_CACHED_DOCS = 200_000  # per search; beyond this the cache starts again (memory bound)

Doc = Dict[str, Any]
# (incident keys, alert keys) -> the documents matching either; raises when the store cannot answer.
Fetcher = Callable[[Sequence[str], Sequence[str]], List[Doc]]


# --- keys ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if type(value) is str:  # nearly always: skip the type checks below
        text = value.strip()
    elif value is None or isinstance(value, (dict, list, tuple, bool)):
        return ""
    else:
        text = str(value).strip()
    return "" if text == "null" else text


def _joined_key(tenant: str, ident: str) -> str:
    # ``tenant`` already normalised (stripped, lower case), ``ident`` stripped.
    return f"{tenant}:{ident.lower()}" if tenant and ident else ""


def incident_key(tenant_id: str, incident_id: str) -> str:
    """``<tenant>:<incident id>``, lower case; "" when either part is missing."""
    return _joined_key(_text(tenant_id).lower(), _text(incident_id))


def alert_key(tenant_id: str, alert_id: str) -> str:
    """``<tenant>:<alert id>``, lower case; "" when either part is missing."""
    return _joined_key(_text(tenant_id).lower(), _text(alert_id))


def doc_key(doc_type: str, identity: str, origin: str) -> str:
    """A document's ``_key``: ``<doc_type>:<incident_key or alert_key>:<origin>``."""
    return f"{doc_type}:{identity}:{origin}"


def store_query(incident_keys: Iterable[str], alert_keys: Iterable[str] = ()) -> Dict[str, Any]:
    """The one KV store query for these keys; {} when there is nothing to ask."""
    incidents = sorted({k for k in incident_keys if k})
    alerts = sorted({k for k in alert_keys if k})
    parts: List[Dict[str, Any]] = []
    if incidents:
        parts.append({"incident_key": {"$in": incidents}})
    if alerts:
        parts.append({"alert_key": {"$in": alerts}})
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$or": parts}


@dataclass(frozen=True)
class Term:
    """One part of a KV store query: documents whose ``incident_key`` is one of ``incident_keys``
    or whose ``alert_key`` is one of ``alert_keys``; only of ``doc_type`` when it is set, and only
    those whose ``last_update_date_time`` is at or after ``since`` (as text) when it is set.

    ``since`` is a Graph time cut to the second (``2026-09-14T10:00:00``): every Graph timestamp of
    that second or later (``...10:00:00Z``, ``...10:00:00.5Z``) sorts at or after it as text, every
    earlier one before, whatever its fraction's length. A store's answer to it may hold a little
    more than needed (the rest of that second), never less; the reader keeps the newest anyway."""

    incident_keys: Tuple[str, ...] = ()
    alert_keys: Tuple[str, ...] = ()
    doc_type: str = ""
    since: str = ""

    @property
    def size(self) -> int:
        return len(self.incident_keys) + len(self.alert_keys)

    def parts(self) -> List[Dict[str, Any]]:
        extra: Dict[str, Any] = {}
        if self.doc_type:
            extra["doc_type"] = self.doc_type
        if self.since:
            extra["last_update_date_time"] = {"$gte": self.since}
        out: List[Dict[str, Any]] = []
        if self.incident_keys:
            out.append({"incident_key": {"$in": list(self.incident_keys)}, **extra})
        if self.alert_keys:
            out.append({"alert_key": {"$in": list(self.alert_keys)}, **extra})
        return out

    def matches(self, doc: Mapping[str, Any]) -> bool:
        """Whether the KV store answers ``doc`` to this term (for stores held in memory: tests)."""
        if self.doc_type and doc.get("doc_type") != self.doc_type:
            return False
        updated = doc.get("last_update_date_time")
        if self.since and not (isinstance(updated, str) and updated >= self.since):
            return False
        return doc.get("incident_key") in self.incident_keys or doc.get("alert_key") in self.alert_keys

    def halves(self) -> Tuple[Term, Term]:
        """The term with its keys split in two (to ask again when an answer was cut)."""
        i, a = (len(self.incident_keys) + 1) // 2, (len(self.alert_keys) + 1) // 2
        first = Term(self.incident_keys[:i], self.alert_keys[:a], self.doc_type, self.since)
        return first, Term(self.incident_keys[i:], self.alert_keys[a:], self.doc_type, self.since)


# [terms] -> the documents matching any; raises when the store cannot answer.
Finder = Callable[[Sequence[Term]], List[Doc]]
Request = Callable[[], List[Doc]]  # one request to the store, ready to run: its documents
Steps = Generator[Request, None, None]  # IncidentCache.steps
Answer = Union[List[Doc], BaseException]  # what a request returned, or why it failed


def terms_query(terms: Iterable[Term]) -> Dict[str, Any]:
    """The one KV store query for these terms; {} when there is nothing to ask."""
    parts = [part for term in terms for part in term.parts()]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$or": parts}


# --- writer side ---------------------------------------------------------------------------------


def canonical_sources(service_raw: Any, detection_raw: Any) -> Tuple[str, str]:
    """Canonical (service, detection), as ``defenderlineage`` computes them for an alert event."""
    return _canonical_sources(_text(service_raw), _text(detection_raw))


@functools.lru_cache(maxsize=1024)
def _canonical_sources(service_text: str, detection_text: str) -> Tuple[str, str]:
    # A tenant's alerts carry a handful of (service, detection) pairs: resolve each pair once.
    detection = taxonomy.canonical_detection(detection_text)
    service = taxonomy.canonical_service(service_text)
    if service.via == "absent":
        service = taxonomy.inferred_service(detection.value if detection.known else None)
    return service.value, detection.value


def docs_from_alert(item: Mapping[str, Any], tenant_id: str, origin: str = ORIGIN_ALERTS) -> List[Doc]:
    """The contribution document of one Graph ``alerts_v2`` alert ([] when it has no id or tenant)."""
    if not isinstance(item, dict) and not isinstance(item, Mapping):  # dict first: Mapping's check is slow
        return []
    tenant = (_text(tenant_id) or _text(item.get("tenantId"))).lower()
    alert_id = _text(item.get("id"))
    akey = _joined_key(tenant, alert_id)
    if not akey:
        return []
    incident_id = _text(item.get("incidentId"))
    service, detection = canonical_sources(item.get("serviceSource"), item.get("detectionSource"))
    # A literal in ALERT_DOC_FIELDS order (a test holds it to that): one per alert of a backfill.
    doc = {
        "_key": doc_key(ALERT, akey, origin),
        "doc_type": ALERT,
        "origin": origin,
        "tenant_id": tenant,
        "incident_key": _joined_key(tenant, incident_id),
        "incident_id": incident_id,
        "alert_key": akey,
        "alert_id": alert_id,
        "last_update_date_time": _text(item.get("lastUpdateDateTime")),
        "service_source": service,
        "detection_source": detection,
    }
    return [doc]


def docs_from_incident(item: Mapping[str, Any], tenant_id: str, origin: str = ORIGIN_INCIDENTS) -> List[Doc]:
    """The summary document of one Graph incident, then one contribution per expanded alert."""
    if not isinstance(item, Mapping):
        return []
    tenant = (_text(tenant_id) or _text(item.get("tenantId"))).lower()
    incident_id = _text(item.get("id"))
    ikey = incident_key(tenant, incident_id)
    if not ikey:
        return []
    summary: Doc = dict.fromkeys(INCIDENT_DOC_FIELDS, "")  # the shape, in its order
    summary.update(
        _key=doc_key(INCIDENT, ikey, origin),
        doc_type=INCIDENT,
        origin=origin,
        tenant_id=tenant,
        incident_key=ikey,
        incident_id=incident_id,
    )
    summary.update((field, _text(item.get(graph_name))) for graph_name, field in SUMMARY_FROM_GRAPH)
    docs = [summary]
    alerts = item.get("alerts")
    if isinstance(alerts, list):  # expanded ($expand=alerts): the summary carries them too
        for alert in alerts:
            if isinstance(alert, Mapping):
                if not _text(alert.get("incidentId")):
                    alert = {**alert, "incidentId": incident_id}
                docs.extend(docs_from_alert(alert, tenant, origin))
        members = [d for d in docs[1:] if d["incident_key"] == ikey]  # an expanded alert naming another: not ours
        summary["alert_ids"] = [d["alert_id"] for d in members]
        summary["alert_service_sources"] = [d["service_source"] for d in members]
        summary["alert_detection_sources"] = [d["detection_source"] for d in members]
    return docs


def docs_from_items(resource: str, items: Iterable[Mapping[str, Any]], tenant_id: str) -> List[Doc]:
    """Documents for one page of a collector's items: ``resource`` is the Graph collection name
    (``alerts_v2`` or ``incidents``, i.e. ``ResourceSpec.name``); other resources yield []."""
    if resource == "alerts_v2":
        return [doc for item in items for doc in docs_from_alert(item, tenant_id)]
    if resource == "incidents":
        return [doc for item in items for doc in docs_from_incident(item, tenant_id)]
    return []


# --- reader side ---------------------------------------------------------------------------------


def _instant(doc: Mapping[str, Any]) -> int:
    ticks = parse_instant(_text(doc.get("last_update_date_time")))
    return ticks if ticks is not None else -1


def _newer(candidate: Mapping[str, Any], current: Optional[Mapping[str, Any]]) -> bool:
    """Whether ``candidate`` is a newer version than ``current`` (ties: the fuller summary wins)."""
    if current is None:
        return True
    a, b = _instant(candidate), _instant(current)
    if a != b:
        return a > b
    # Same instant, different writers: deterministic, and a document with more filled fields wins.
    filled_a = sum(1 for f in DOC_FIELDS if _text(candidate.get(f)))
    filled_b = sum(1 for f in DOC_FIELDS if _text(current.get(f)))
    if filled_a != filled_b:
        return filled_a > filled_b
    return _text(candidate.get("_key")) < _text(current.get("_key"))


Columns = Tuple[List[str], List[str], List[str], List[str]]  # alert keys, ids, services, detections


def _listed_columns(ikey: str, summary: Mapping[str, Any]) -> Optional[Columns]:
    """(alert keys, alert ids, services, detections), one item per alert a summary lists (alerts
    with an empty id left out); None when it lists none (written without them) or its lists do not
    line up. Columns rather than a tuple per alert: a lean summary keeps them as they are."""
    ids = summary.get("alert_ids")
    services = summary.get("alert_service_sources")
    detections = summary.get("alert_detection_sources")
    if not (isinstance(ids, list) and isinstance(services, list) and isinstance(detections, list)):
        return None
    if not len(ids) == len(services) == len(detections):
        return None
    tenant = _text(summary.get("tenant_id")).lower() or ikey.rpartition(":")[0]
    if not tenant:
        return [], [], [], []
    id_texts, service_texts, detection_texts = _texts(ids), _texts(services), _texts(detections)
    if "" in id_texts:  # rare: drop the alerts without an id, keeping the columns in line
        kept = [n for n, aid in enumerate(id_texts) if aid]
        id_texts = [id_texts[n] for n in kept]
        service_texts = [service_texts[n] for n in kept]
        detection_texts = [detection_texts[n] for n in kept]
    prefix = tenant + ":"
    return [prefix + aid.lower() for aid in id_texts], id_texts, service_texts, detection_texts


def _texts(values: List[Any]) -> List[str]:
    """``_text`` of each value; strings (the usual JSON answer) stripped in one C-level pass."""
    try:
        texts = list(map(str.strip, values))
    except TypeError:  # a value that is not a string (None, a number): each its own way
        texts = [v.strip() if type(v) is str else _text(v) for v in values]
    return ["" if t == "null" else t for t in texts] if "null" in texts else texts


def _alert_docs_of_summary(ikey: str, summary: Mapping[str, Any], listed: Columns) -> Iterator[Doc]:
    """The alert documents the incidents input writes beside this summary, as the summary lists
    them, dated by the summary: it was read with its alerts, so each is at least that recent."""
    origin = _text(summary.get("origin"))
    shared = {
        "doc_type": ALERT,
        "origin": origin,
        "tenant_id": _text(summary.get("tenant_id")).lower() or ikey.rpartition(":")[0],
        "incident_key": ikey,
        "incident_id": _text(summary.get("incident_id")),
        "last_update_date_time": _text(summary.get("last_update_date_time")),
    }
    key_end = ":" + origin
    for akey, aid, service, detection in zip(*listed):
        yield {
            "_key": ALERT + ":" + akey + key_end,  # doc_key(ALERT, akey, origin)
            **shared,
            "alert_key": akey,
            "alert_id": aid,
            "service_source": service,
            "detection_source": detection,
        }


def _since(summary: Mapping[str, Any]) -> str:
    """The summary's time cut to the second, for :class:`Term` ("" unless Graph's UTC form)."""
    text = _text(summary.get("last_update_date_time"))
    if len(text) >= 20 and text[10] == "T" and text.endswith("Z") and parse_instant(text) is not None:
        return text[:19]
    return ""


@dataclass(frozen=True)
class IncidentView:
    """What the store knows about one incident, after following merges.

    ``original_id`` is the id asked about; ``incident_id`` the survivor (equal when not merged);
    ``chain`` every id from the original to the survivor. ``found`` is whether the survivor's
    summary is in the store. ``warning`` says why a merge chain was not followed to its end.
    """

    tenant_id: str
    incident_id: str
    original_id: str
    found: bool = False
    title: str = ""
    severity: str = ""
    status: str = ""
    classification: str = ""
    determination: str = ""
    assigned_to: str = ""
    created_date_time: str = ""
    last_update_date_time: str = ""
    incident_web_url: str = ""
    alert_ids: Tuple[str, ...] = ()
    service_sources: Tuple[str, ...] = ()
    detection_sources: Tuple[str, ...] = ()
    chain: Tuple[str, ...] = ()
    warning: str = ""

    @property
    def merged(self) -> bool:
        return self.incident_id != self.original_id

    @property
    def alert_count(self) -> int:
        return len(self.alert_ids)

    @property
    def cross_product(self) -> bool:
        """More than one product (service source) raised the incident's alerts."""
        return len([s for s in self.service_sources if s not in _NOT_A_PRODUCT]) > 1

    def output_fields(self) -> Dict[str, Any]:
        """The contract's ``incident_*`` fields; the source fields are lists (multivalue)."""
        known = self.found or bool(self.alert_ids)
        return {
            "incident_title": self.title,
            "incident_severity": self.severity,
            "incident_status": self.status,
            "incident_alert_count": str(self.alert_count) if known else "",
            "incident_service_sources": list(self.service_sources),
            "incident_detection_sources": list(self.detection_sources),
            "incident_cross_product": ("true" if self.cross_product else "false") if known else "",
        }


def _view_of(**fields: Any) -> IncidentView:
    """``IncidentView(**fields)`` without the frozen dataclass's ``__init__``, which sets each of the
    18 fields through ``object.__setattr__`` (~2.4 us of a ~7 us view, once per incident of a chunk,
    Python 3.9). The same instance: the fields are plain and there is no ``__post_init__`` (a test
    holds every view built so equal to the one ``__init__`` makes from its fields)."""
    view: IncidentView = object.__new__(IncidentView)
    view.__dict__.update(fields)
    return view


def empty_output_fields() -> Dict[str, Any]:
    return dict.fromkeys(INCIDENT_OUTPUT_FIELDS, "")


# The summary fields an IncidentView shows, in its order (those that are document fields too).
_VIEW_SUMMARY_FIELDS: Tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(IncidentView) if f.name in _SUMMARY_ONLY | {"last_update_date_time"}
)


class StoreUnavailable(Exception):
    """The incident store could not be read; the cache does not ask again for this search."""


class IncidentCache:
    """The documents one search has fetched, and the views built from them.

    Also an ``IncidentLookup`` (``surviving_incident``) for ``defender_lineage_core.lineage.place``.
    """

    # Whether add_docs may read a summary lean (_take_lean); a test switches it off on an instance
    # to get the eager reading as its reference.
    lean_summaries = True

    def __init__(
        self,
        fetch: Optional[Fetcher] = None,
        max_chain: int = MAX_CHAIN,
        max_docs: int = MAX_CACHED_DOCS,
        *,
        find: Optional[Finder] = None,
    ) -> None:
        """``fetch`` asks for every document of some keys (one request a round); ``find``, when
        given instead, asks for summaries first and then only the alert documents a summary does not
        already stand for (see :meth:`prefetch`)."""
        if fetch is None and find is None:
            raise ValueError("IncidentCache needs fetch or find")
        self._fetch = fetch
        self._find = find
        self.max_chain = max(1, max_chain)
        self.max_docs = max_docs
        self.requests = 0
        self.failure: Optional[str] = None
        self.generation = 0  # counts changes of what the views are built from (add_docs, a reset)
        self._reset()

    def trim(self) -> None:
        """Start again when more than ``max_docs`` documents were taken in (the memory bound). The
        command calls it between chunks, so nothing a chunk's waiting events need is dropped."""
        if self._docs > self.max_docs:
            self._reset()

    def _reset(self) -> None:
        self.generation += 1
        self._summaries: Dict[str, Doc] = {}  # incident_key -> newest summary
        self._alerts: Dict[str, Doc] = {}  # alert_key -> newest contribution
        self._alert_at: Dict[str, int] = {}  # alert_key -> its newest contribution's instant
        self._alert_parts: Dict[str, Tuple[str, str, str]] = {}  # alert_key -> (id, service, detection)
        # incident_key -> (instant, listed alert keys) of its newest summary, when that lists alerts
        # (a lean one's is made when it is indexed)
        self._listing: Dict[str, Tuple[int, List[str]]] = {}
        self._members: Dict[str, Set[str]] = {}  # incident_key -> alert_keys whose newest doc names it
        # Lean summaries (_take_lean): incident_key -> the columns of its summary, whose alerts are
        # not in the four dicts above yet; alert_key -> the lean incident that lists it.
        self._lean: Dict[str, Columns] = {}
        self._lean_owner: Dict[str, str] = {}
        self._asked_incidents: Set[str] = set()
        self._asked_alerts: Set[str] = set()
        self._views: Dict[str, Optional[IncidentView]] = {}
        self._views_as_asked: Dict[Tuple[str, str], Optional[IncidentView]] = {}  # (tenant, id) as given
        self._docs = 0

    # -- fetching -------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        return self.failure is None

    def prefetch(self, incident_keys: Iterable[str], alert_keys: Iterable[str] = ()) -> None:
        """Fetch what these keys need and is not cached: one request, plus follow-ups only for merge
        chains (or alerts' incidents) leading to incidents not fetched yet. Raises StoreUnavailable
        on the first failure, and after that returns at once without asking again."""
        self.trim()
        steps = self.steps(incident_keys, alert_keys)
        request = next(steps, None)
        while request is not None:
            try:
                docs: Answer = request()
            except Exception as error:
                docs = error
            request = self.answer(steps, docs)

    def steps(self, incident_keys: Iterable[str], alert_keys: Iterable[str] = ()) -> Steps:
        """:meth:`prefetch` one request at a time, for a caller that waits for the store elsewhere
        (the command's worker thread, while the chunk is read on): each step is a request (a call
        that asks the store and returns its documents), and :meth:`answer` takes what it returned
        and gives the next step. The thread that calls :meth:`answer` is the only one that changes
        the cache; the request itself touches nothing of it."""
        if self.failure is not None:
            return
        incidents = {k for k in incident_keys if k}
        alerts = {k for k in alert_keys if k}
        ask_incidents = incidents - self._asked_incidents
        ask_alerts = alerts - self._asked_alerts
        asked: Set[str] = set()
        rounds = 0
        while (ask_incidents or ask_alerts) and rounds <= self.max_chain:
            yield self._ask(ask_incidents, ask_alerts)
            asked |= ask_incidents
            rounds += 1
            ask_incidents = self._unfetched_targets(incidents, alerts)
            ask_alerts = set()
        if self._find is not None and asked:
            yield self._ask_alerts_of(asked)

    def answer(self, steps: Steps, docs: Answer) -> Optional[Request]:
        """Take the documents a step's request returned, and give the next step (None: done). A
        failed request (its exception given instead) marks the store unavailable for the search:
        StoreUnavailable is raised, and no step asks again."""
        self.requests += 1
        if isinstance(docs, BaseException):
            steps.close()
            self.failure = f"{type(docs).__name__}: {docs}"[:300]
            raise StoreUnavailable(self.failure) from docs
        self.add_docs(docs)
        return next(steps, None)

    def _ask(self, incidents: Set[str], alerts: Set[str]) -> Request:
        """With ``find``: the incidents' summaries (not their alert documents yet) and the alerts'
        documents; with ``fetch``: every document of both."""
        self._asked_incidents |= incidents
        self._asked_alerts |= alerts
        if self._find is not None:
            summaries = Term(tuple(sorted(incidents)), doc_type=INCIDENT)
            return functools.partial(self._find, [summaries, Term(alert_keys=tuple(sorted(alerts)))])
        assert self._fetch is not None  # __init__ takes one of the two
        return functools.partial(self._fetch, sorted(incidents), sorted(alerts))

    def _ask_alerts_of(self, incidents: Set[str]) -> Request:
        """The alert documents these incidents need beside their summaries, in one request: all of
        them where the newest summary does not list its alerts (written before summaries did, by the
        rebuild search, or no summary at all), otherwise only versions at or after the summary's
        time, of alerts naming the incident (joined it since) or listed in it (moved away since)."""
        everything: List[str] = []
        newer: Dict[str, Tuple[List[str], Set[str]]] = {}
        for ikey in sorted(incidents):
            summary = self._summaries.get(ikey)
            listing = self._listing.get(ikey)
            listed = listing[1] if listing is not None else self._lean[ikey][0] if ikey in self._lean else None
            since = _since(summary) if summary is not None and listed is not None else ""
            if not since or listed is None:
                everything.append(ikey)
                continue
            ikeys, akeys = newer.setdefault(since, ([], set()))
            ikeys.append(ikey)
            akeys.update(listed)
        terms = [Term(tuple(everything), doc_type=ALERT)]
        terms += [Term(tuple(i), tuple(sorted(a)), ALERT, since) for since, (i, a) in sorted(newer.items())]
        assert self._find is not None
        return functools.partial(self._find, terms)

    def _unfetched_targets(self, incidents: Set[str], alerts: Set[str]) -> Set[str]:
        """Incidents the given keys lead to (through alerts and merges) that were never asked for."""
        self._index_lean((), alerts)
        starts = set(incidents)
        for akey in alerts:
            doc = self._alerts.get(akey)
            if doc is not None and _text(doc.get("incident_key")):
                starts.add(_text(doc.get("incident_key")))
        missing: Set[str] = set()
        for start in starts:
            current: Optional[str] = start
            seen: Set[str] = set()
            while current and current not in seen and len(seen) <= self.max_chain:
                if current not in self._asked_incidents:
                    missing.add(current)
                    break
                seen.add(current)
                current = self._redirect_of(current)
        return missing

    def add_docs(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Take documents into the cache (newest version per incident and per alert wins)."""
        summaries = self._summaries
        for doc in docs:
            if type(doc) is not dict and not isinstance(doc, Mapping):  # dict first: Mapping's check is slow
                continue
            self._docs += 1
            doc_type = _text(doc.get("doc_type"))
            if doc_type == INCIDENT:
                ikey = _text(doc.get("incident_key")).lower()
                if not ikey:
                    continue
                listed = _listed_columns(ikey, doc)
                current = summaries.get(ikey)
                if listed is not None and listed[0]:
                    # the incident's newest summary, the first or newer than one without alerts
                    newest = current is None or (ikey not in self._lean and _newer(doc, current))
                    if newest and self._take_lean(ikey, doc, listed):
                        continue
                elif current is not None and ikey in self._lean and not _newer(doc, current):
                    continue  # an older summary listing no alert (the rebuild's) changes nothing
                if self._lean:
                    self._index_lean((ikey,), listed[0] if listed else ())
                at = _instant(doc)
                if current is None or _newer(doc, current):
                    summaries[ikey] = dict(doc)
                    if listed is not None:
                        self._listing[ikey] = (at, listed[0])
                    else:
                        self._listing.pop(ikey, None)
                if listed and listed[0]:  # each listed alert as the incidents input's own alert document says it
                    self._docs += len(listed[0])
                    self._add_listed(ikey, at, listed, _alert_docs_of_summary(ikey, doc, listed))
            elif doc_type == ALERT:
                akey = _text(doc.get("alert_key")).lower()
                if akey:
                    parts = (
                        _text(doc.get("alert_id")),
                        _text(doc.get("service_source")),
                        _text(doc.get("detection_source")),
                    )
                    ikey = _text(doc.get("incident_key")).lower()
                    if self._lean:
                        self._index_lean((ikey,), (akey,))
                    self._add_alert(dict(doc), akey, ikey, _instant(doc), parts)
        self._views.clear()
        self._views_as_asked.clear()
        self.generation += 1

    def _take_lean(self, ikey: str, doc: Mapping[str, Any], listed: Columns) -> bool:
        """Keep a summary that lists its alerts, and is its incident's newest, without indexing its
        alerts one by one, when nothing else in the cache concerns them or its incident (the usual
        case: a chunk's incidents, fetched for the first time; an older summary without alerts, as
        the rebuild search writes, may be there). Its alerts are indexed (:meth:`_index_lean`) only
        when something reads or changes them; the view reads the columns."""
        keys = listed[0]
        fresh = set(keys)
        if not (
            self.lean_summaries
            and not self._members.get(ikey)
            and len(fresh) == len(keys)
            and self._alert_at.keys().isdisjoint(fresh)
            and self._lean_owner.keys().isdisjoint(fresh)
        ):
            return False
        self._summaries[ikey] = dict(doc)
        self._listing.pop(ikey, None)  # an older summary's empty list: _ask_alerts_of reads the columns
        self._lean[ikey] = listed
        self._lean_owner.update(dict.fromkeys(keys, ikey))
        self._docs += len(keys)
        return True

    def _index_lean(self, incidents: Iterable[str], alerts: Iterable[str]) -> None:
        """Index, as the eager reading does, the lean incidents among ``incidents`` and those
        listing one of ``alerts``, before anything reads or changes their alerts.
        Lean incidents' alerts are known to nobody else (see :meth:`_take_lean`), so indexing one
        later than it was read, or another one's first, gives the same cache as reading it eagerly."""
        lean, owner = self._lean, self._lean_owner
        for ikey in [*incidents, *(owner[akey] for akey in alerts if akey in owner)]:
            if ikey not in lean:  # not lean, or indexed a moment ago
                continue
            listed = lean.pop(ikey)
            for akey in listed[0]:
                del owner[akey]
            summary = self._summaries[ikey]  # the lean one still: another summary of it indexes it first
            at = _instant(summary)
            self._listing[ikey] = (at, listed[0])
            self._add_listed(ikey, at, listed, _alert_docs_of_summary(ikey, summary, listed))

    def _add_listed(self, ikey: str, at: int, listed: Columns, docs: Iterable[Doc]) -> None:
        """:meth:`_add_alert` for each alert a summary lists; an alert seen for the first time (the
        usual case) without the call and the comparison."""
        alert_at, alerts, alert_parts = self._alert_at, self._alerts, self._alert_parts
        members: Optional[Set[str]] = None
        for doc, akey, aid, service, detection in zip(docs, *listed):
            if akey in alert_at:
                self._add_alert(doc, akey, ikey, at, (aid, service, detection))
                continue
            alerts[akey] = doc
            alert_at[akey] = at
            alert_parts[akey] = (aid, service, detection)
            if members is None:
                members = self._members.setdefault(ikey, set())
            members.add(akey)

    def _add_alert(self, doc: Doc, akey: str, ikey: str, at: int, parts: Tuple[str, str, str]) -> None:
        """Keep ``doc`` (instant ``at``) as alert ``akey``'s version if it is the newest seen."""
        current_at = self._alert_at.get(akey)
        if current_at is not None:
            if at < current_at or (at == current_at and not _newer(doc, self._alerts[akey])):
                return
            self._members.get(_text(self._alerts[akey].get("incident_key")).lower(), set()).discard(akey)
        self._alerts[akey] = doc
        self._alert_at[akey] = at
        self._alert_parts[akey] = parts
        if ikey:
            self._members.setdefault(ikey, set()).add(akey)

    # -- reading --------------------------------------------------------------------------------

    def _redirect_of(self, ikey: str) -> Optional[str]:
        summary = self._summaries.get(ikey)
        if summary is None or _text(summary.get("status")).lower() != REDIRECTED:
            return None
        target = _text(summary.get("redirect_incident_id"))
        tenant = _text(summary.get("tenant_id")) or ikey.rpartition(":")[0]
        return incident_key(tenant, target) or None

    def incident_of_alert(self, tenant_id: str, alert_id: str) -> str:
        """The incident id the store's newest version of this alert names ("" when unknown)."""
        akey = alert_key(tenant_id, alert_id)
        if akey in self._lean_owner:
            self._index_lean((), (akey,))
        doc = self._alerts.get(akey)
        return _text(doc.get("incident_id")) if doc is not None else ""

    def view(self, tenant_id: str, incident_id: str) -> Optional[IncidentView]:
        """The incident as the store knows it, merges followed; None when the store knows nothing."""
        pair = (tenant_id, incident_id)
        if pair in self._views_as_asked:  # events of one incident ask alike: skip the key's making
            return self._views_as_asked[pair]
        view = self._view(tenant_id, incident_id)
        if type(tenant_id) is str and type(incident_id) is str:
            self._views_as_asked[pair] = view
        return view

    def _view(self, tenant_id: str, incident_id: str) -> Optional[IncidentView]:
        tenant, ident = _text(tenant_id).lower(), _text(incident_id)
        ikey = _joined_key(tenant, ident)  # incident_key(tenant_id, incident_id), its parts kept
        if not ikey:
            return None
        if ikey not in self._views:
            self._views[ikey] = self._build_view(tenant, ident, ikey)
        return self._views[ikey]

    def surviving_incident(self, tenant_id: str, incident_id: str) -> Optional[str]:
        """``IncidentLookup``: the incident this one was merged into, or None."""
        view = self.view(tenant_id, incident_id)
        return view.incident_id if view is not None and view.merged else None

    def _follow(self, ikey: str, incident_id: str) -> Tuple[str, List[str], str]:
        """(survivor key, ids from the original to the survivor, warning)."""
        chain_ids = [incident_id]
        seen = {ikey}
        current = ikey
        while True:
            target = self._redirect_of(current)
            if target is None:
                return current, chain_ids, ""
            target_id = _text(self._summaries[current].get("redirect_incident_id"))
            if target in seen:
                loop = " > ".join([*chain_ids, target_id])
                return ikey, [incident_id], f"incident merge cycle {loop}: not followed"
            if len(chain_ids) > self.max_chain:
                stop = f"incident merge chain longer than {self.max_chain}: stopped at {chain_ids[-1]}"
                return current, chain_ids, stop
            chain_ids.append(target_id)
            seen.add(target)
            current = target

    def _build_view(self, tenant: str, incident_id: str, ikey: str) -> Optional[IncidentView]:
        summary = self._summaries.get(ikey)
        if summary is not None and _text(summary.get("status")).lower() == REDIRECTED:
            survivor_key, chain, warning = self._follow(ikey, incident_id)
            summary = self._summaries.get(survivor_key)
        else:  # not redirected (nearly always): _follow would stop here
            survivor_key, chain, warning = ikey, [incident_id], ""
        lean = self._lean.get(survivor_key)
        if lean is not None:  # its summary is its only source: the columns, as the members would give them
            alert_ids, services, detections = set(lean[1]), set(lean[2]), set(lean[3])
        else:
            members = self._members.get(survivor_key, ())
            if summary is None and not members and len(chain) == 1 and not warning:
                return None
            alert_ids, services, detections = self._member_parts(survivor_key, summary is not None, members)
        for values in (alert_ids, services, detections):
            values.discard("")
        found = summary is not None
        s: Mapping[str, Any] = summary or {}
        title, severity, status, classification, determination, assigned_to, created, updated, url = _texts(
            list(map(s.get, _VIEW_SUMMARY_FIELDS))
        )
        return _view_of(
            tenant_id=tenant,
            incident_id=chain[-1],
            original_id=incident_id,
            found=found,
            title=title,
            severity=severity,
            status=status,
            classification=classification,
            determination=determination,
            assigned_to=assigned_to,
            created_date_time=created,
            last_update_date_time=updated,
            incident_web_url=url,
            alert_ids=tuple(sorted(alert_ids)),
            service_sources=tuple(sorted(services)),
            detection_sources=tuple(sorted(detections)),
            chain=tuple(chain),
            warning=warning,
        )

    def _member_parts(
        self, ikey: str, has_summary: bool, members: Iterable[str]
    ) -> Tuple[Set[str], Set[str], Set[str]]:
        """(alert ids, services, detections) of the alerts whose newest version names ``ikey``."""
        # One pass over the alerts (a view is built once per incident and search, but for every
        # incident of a big chunk); each set is sorted by the caller, so the order does not matter.
        alert_ids: Set[str] = set()
        services: Set[str] = set()
        detections: Set[str] = set()
        # A summary that lists its alerts was read with them: an alert version older than it that
        # names the incident but is not listed there left the incident before (its listed alerts
        # are in the cache at the summary's time, so they are not older).
        listing = self._listing.get(ikey) if has_summary else None
        floor = listing[0] if listing is not None else -1
        alert_at, alert_parts = self._alert_at, self._alert_parts
        for akey in members:
            if floor >= 0 and alert_at[akey] < floor:
                continue
            alert_id, service, detection = alert_parts[akey]
            alert_ids.add(alert_id)
            services.add(service)
            detections.add(detection)
        return alert_ids, services, detections


# --- enrichment of placed events -----------------------------------------------------------------


def request_keys(fields: Mapping[str, Any]) -> Tuple[str, str]:
    """(incident key, alert key) the store is asked about for one placed event (``lineage.place``
    output). The alert key only when the event names no incident (hunting rows): it leads to the
    incident through the alert's contribution document."""
    tenant = _text(fields.get("tenant_id"))
    incident = _text(fields.get("incident_id"))
    if incident:
        return incident_key(tenant, incident), ""
    return "", alert_key(tenant, _text(fields.get("alert_id")))


def _relabel(path: str, old: str, new: str) -> str:
    """``path`` with its first level ``old`` replaced by ``new`` (unchanged when it does not start so)."""
    if path == old or path.startswith(old + " "):
        return new + path[len(old) :]
    return path


def enrich(fields: Dict[str, Any], cache: Optional[IncidentCache]) -> Dict[str, Any]:
    """The ``incident_*`` fields for one placed event, from what ``cache`` holds (no request).

    Also moves ``fields`` (``lineage.place`` output) on to the surviving incident when the store
    knows of merges the event could not see, and names the incident of a hunting row's alert:
    ``incident_id``, ``incident_id_original``, ``lineage_path`` and ``lineage_warning`` as
    ``place(record, incidents=cache)`` would set them.
    """
    view = enrich_view(fields, cache)
    return view.output_fields() if view is not None else empty_output_fields()


def enrich_view(fields: Dict[str, Any], cache: Optional[IncidentCache]) -> Optional[IncidentView]:
    """:func:`enrich`, giving the incident's view (None: the ``incident_*`` fields stay empty).

    Events of one incident share its view object while the cache is unchanged, so a caller can
    encode the view's fields once per incident instead of once per event."""
    if cache is None:
        return None
    tenant = _text(fields.get("tenant_id"))
    named = _text(fields.get("incident_id"))
    if not tenant:
        return None
    incident = named or cache.incident_of_alert(tenant, _text(fields.get("alert_id")))
    if not incident:
        return None
    view = cache.view(tenant, incident)
    survivor = view.incident_id if view is not None else incident
    path = _text(fields.get("lineage_path"))
    if not named:  # found through the alert (hunting row, alert without incidentId)
        fields["incident_id"] = survivor
        if survivor != incident:
            fields["incident_id_original"] = incident
        fields["lineage_path"] = _relabel(path, "?", f"incident:{survivor}")
    elif survivor != named:  # merged, as only the store knows
        fields["incident_id"] = survivor
        if fields.get("lineage_layer") == "incident":
            if _text(fields.get("incident_id_original")):  # the event said named; named moved on
                fields["lineage_path"] = _relabel(path, f"incident:{named}", f"incident:{survivor}")
            else:
                fields["incident_id_original"] = named
                merged = f"incident:{survivor} (merged from {named})"
                fields["lineage_path"] = _relabel(path, f"incident:{named}", merged)
        else:
            fields["incident_id_original"] = _text(fields.get("incident_id_original")) or named
            fields["lineage_path"] = _relabel(path, f"incident:{named}", f"incident:{survivor}")
    if view is None:
        return None
    if view.warning:
        warning = _text(fields.get("lineage_warning"))
        fields["lineage_warning"] = f"{warning}; {view.warning}" if warning else view.warning
    return view
