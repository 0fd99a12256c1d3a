"""The project's protocol layer against splunklib, as a differential oracle (issue 18).

For a hypothesis-generated corpus of what splunkd sends (multivalue fields with their ``__mv_``
encoding, empty and missing values, any unicode splunklib can read, large fields, empty chunks,
several chunks with ``finished`` on the last, getinfo with good and bad options, the incident-store
warning and metric in the inspector), the built ``defenderlineage`` and the same logic run by
splunklib (tests/harness/oracle_command.py) must give the same records and the same metadata, on
Python 3.9 and 3.13. Column order is free in the protocol (splunkd reads columns by name), so
records are compared as field -> value maps; the metric's elapsed seconds are wall time, not compared.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defender_lineage_core.incident_store import COLLECTION, INCIDENT_OUTPUT_FIELDS, docs_from_alert, docs_from_incident
from tests.fixture_paths import SAMPLES
from tests.harness.scp_driver import CommandResult, run_command

pytestmark = pytest.mark.integration

ORACLE = Path(__file__).resolve().parents[1] / "harness" / "oracle_command.py"
ORACLE_SCRIPT = "defenderlineage_oracle.py"
SAMPLE_RAWS = [(SAMPLES / n).read_text(encoding="utf-8") for n in ("alert_v2.json", "incident.json")]


@pytest.fixture(scope="module")
def both(addon: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the built add-on with the splunklib oracle beside the command in bin/."""
    copy = tmp_path_factory.mktemp("oracle") / addon.name
    shutil.copytree(addon, copy)
    shutil.copy(ORACLE, copy / "bin" / ORACLE_SCRIPT)
    return copy


# Any text splunklib can read: no lone surrogates (not UTF-8), no NUL (its reader on 3.9 refuses it).
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_NAMES = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(["_raw", "sourcetype", "source", "lineage_path", "incident_service_sources", "x y", "é"]),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_VALUE = st.one_of(
    _TEXT,
    st.lists(_TEXT, min_size=2, max_size=4),  # multivalue: the driver writes its __mv_ column
    st.just(""),
    st.just("v" * 200_000),  # above csv's default field limit (128 KiB)
)
_RAW = st.one_of(st.sampled_from(SAMPLE_RAWS), _JSON.map(json.dumps), _TEXT)
_RECORD = st.builds(
    lambda raw, fields: {"_raw": raw, **{k: v for k, v in fields.items() if k != "_raw"}},
    _RAW,
    st.dictionaries(_NAMES, _VALUE, max_size=4),
)
_ARGS = st.sampled_from(
    [
        [],
        ["incidents=false"],
        ["incidents=T"],
        ["incidents=maybe"],
        ["foo=1"],
        ["incidents=no", "bar"],
        ["x=1", "incidents="],
    ]
)


def _normalised(result: CommandResult) -> Dict[str, Any]:
    replies: List[Dict[str, Any]] = json.loads(json.dumps(result.replies))
    for reply in replies:
        metric = (reply.get("inspector") or {}).get("metric.incident_store")
        if metric:
            metric[0] = "seconds"
    return {
        "replies": replies,
        "records": result.records,
        "error": result.error,
        "returncode": result.returncode,
        "chunks_sent": result.chunks_sent,
    }


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(records=st.lists(_RECORD, max_size=6), chunk_size=st.integers(1, 4), args=_ARGS)
def test_same_records_and_metadata_as_splunklib(
    both: Path, python: str, records: List[Dict[str, Any]], chunk_size: int, args: List[str]
) -> None:
    ours = run_command(both, python, records, args=args, chunk_size=chunk_size)
    oracle = run_command(both, python, records, args=args, chunk_size=chunk_size, script=ORACLE_SCRIPT)
    assert oracle.replies, oracle.stderr[-2000:]  # the oracle ran
    assert _normalised(ours) == _normalised(oracle)
    if ours.error is None:
        assert len(ours.records) == len(records)


def test_oracle_comparison_sees_a_difference(both: Path, python: str) -> None:
    """The comparison can fail: a field the oracle writes and the command does not is caught."""
    records = [{"_raw": SAMPLE_RAWS[0], "sourcetype": "ms:defender:graph:alert"}]
    ours = _normalised(run_command(both, python, records))
    oracle = _normalised(run_command(both, python, records, script=ORACLE_SCRIPT))
    assert ours == oracle
    del oracle["records"][0][INCIDENT_OUTPUT_FIELDS[0]]
    assert ours != oracle


# --- with an incident store (issue 18) -----------------------------------------------------------
# The command reads the store in batches while a chunk is read, begins each row as it is placed and
# ends it once its incident is fetched (rewriting it whole when the store moves the event on: merges,
# hunting rows); the oracle reads every document of a chunk's keys at once, then enriches. Their
# records must be equal. (Their inspector metrics differ by design: request counts.)

_TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"


def _alert(aid: str, iid: str, service: str = "microsoftDefenderForEndpoint", **more: Any) -> Dict[str, Any]:
    item = {
        "id": aid,
        "incidentId": iid,
        "tenantId": _TENANT,
        "serviceSource": service,
        "detectionSource": "antivirus",
        "lastUpdateDateTime": "2026-09-14T09:00:00.1234567Z",
    }
    item.update(more)
    return item


def _incident(iid: str, alerts: List[Dict[str, Any]], **more: Any) -> Dict[str, Any]:
    item = {
        "id": iid,
        "tenantId": _TENANT,
        "displayName": f'incident {iid}, "quoted"',
        "severity": "high",
        "status": "active",
        "lastUpdateDateTime": "2026-09-14T10:00:00Z",
        "alerts": alerts,
    }
    item.update(more)
    return item


def _store_docs() -> List[Dict[str, Any]]:
    """Incidents 1-3 (summaries listing their alerts), 2 merged into 3, 4 without a summary list (as
    the rebuild search writes it), alert h1 of incident 5 (no summary: a hunting row finds it), and
    600 more incidents for batches. Not an alert that left an incident after its summary: the oracle
    reads every document of an incident's key, so it cannot see that (the command asks for the
    listed alerts' newer versions: test_enrichment.py, test_incident_store.py)."""
    docs: List[Dict[str, Any]] = []
    for n, more in ((1, {}), (2, {"status": "redirected", "redirectIncidentId": "3"}), (3, {})):
        alerts = [
            _alert(f"a{n}-{k}", str(n), "microsoftDefenderForOffice365" if k else "microsoftDefenderForEndpoint")
            for k in range(3)
        ]
        docs += docs_from_incident(_incident(str(n), alerts, **more), _TENANT)
        docs += [d for a in alerts for d in docs_from_alert(a, _TENANT)]
    docs += [
        {k: v for k, v in d.items() if not k.startswith("alert_")}
        for d in docs_from_incident(_incident("4", [_alert("a4-0", "4")]), _TENANT)
    ]
    docs += docs_from_alert(_alert("h1", "5", "microsoftDefenderForIdentity"), _TENANT)
    for n in range(100, 700):
        docs += docs_from_incident(_incident(str(n), [_alert(f"b{n}-{k}", str(n)) for k in range(2)]), _TENANT)
    return docs


def _event(item: Dict[str, Any], **more: Any) -> Dict[str, Any]:
    record = {
        "_raw": json.dumps(item),
        "sourcetype": "ms:defender:graph:alert",
        "source": f"ms_graph://{_TENANT}/security/alerts_v2",
    }
    record.update(more)
    return record


_HUNTING = {
    "_raw": json.dumps({"AlertId": "h1", "ServiceSource": "Microsoft Defender for Identity"}),
    "sourcetype": "ms:defender:graph:hunting",
    "source": f"ms_graph://{_TENANT}/security/runHuntingQuery/alertinfo",
    "AlertId": "h1",
}
_UNKNOWN_HUNTING = {**_HUNTING, "_raw": _HUNTING["_raw"].replace("h1", "h9"), "AlertId": "h9"}  # nothing found
_STORE_EVENTS = st.one_of(
    st.sampled_from(["1", "2", "3", "4", "5", "9", "150"]).map(lambda iid: _event(_alert(f"e-{iid}", iid))),
    st.sampled_from([_HUNTING, _UNKNOWN_HUNTING]),
    # the command run twice: its fields already there, so the row is re-encoded (the slow way)
    st.sampled_from(["2", "3"]).map(lambda iid: _event(_alert(f"t-{iid}", iid), lineage_path="x", incident_title="y")),
    st.builds(lambda text: _event(_alert("u", "1"), note=text), _TEXT),
)


@pytest.fixture
def store(splunkd: Any, both: Path) -> Any:
    splunkd.load_app_defaults(both)
    splunkd.kv_save(COLLECTION, _store_docs())
    return splunkd


def _same_as_oracle(both: Path, python: str, store: Any, records: List[Dict[str, Any]], chunk_size: int) -> None:
    kw: Dict[str, Any] = {"chunk_size": chunk_size, "splunkd_uri": store.uri, "session_key": store.session_key}
    ours = run_command(both, python, records, **kw)
    oracle = run_command(both, python, records, script=ORACLE_SCRIPT, **kw)
    assert oracle.replies, oracle.stderr[-2000:]
    assert ours.error is None and oracle.error is None, (ours.stderr[-2000:], oracle.stderr[-2000:])
    assert len(ours.records) == len(records)
    assert ours.records == oracle.records
    assert ours.messages == oracle.messages


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(records=st.lists(_STORE_EVENTS, max_size=12), chunk_size=st.integers(1, 5))
def test_same_records_as_splunklib_with_an_incident_store(
    both: Path, python: str, store: Any, records: List[Dict[str, Any]], chunk_size: int
) -> None:
    _same_as_oracle(both, python, store, records, chunk_size)


def test_same_records_as_splunklib_when_a_chunk_is_read_in_several_batches(both: Path, python: str, store: Any) -> None:
    # 605 incidents, each named in four tenants (three of which the store knows nothing of): 2,420
    # keys, more than one batch of 2,000, so rows of the first batch end while the second is fetched.
    records: List[Dict[str, Any]] = []
    for n in [*range(100, 700), 1, 2, 3, 4, 9]:
        for k in range(3):
            records.append(_event(_alert(f"x{n}-{k}", str(n))))
            other = dict(_alert(f"y{n}-{k}", str(n)), tenantId=f"0b7e5d1c-1111-4c3a-8e55-{k:012d}")
            records.append(_event(other, source=f"ms_graph://{other['tenantId']}/security/alerts_v2"))
    records[7:7] = [_UNKNOWN_HUNTING, _HUNTING]  # a row that finds nothing ends alone: the next finds its own
    _same_as_oracle(both, python, store, records, chunk_size=len(records))
