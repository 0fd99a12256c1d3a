"""defenderlineage, built, run as splunkd runs it (chunked protocol v2) under Python 3.9 and 3.13."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defender_lineage_core.incident_store import INCIDENT_OUTPUT_FIELDS
from defender_lineage_core.lineage import OUTPUT_FIELDS
from tests.fixture_paths import SAMPLES
from tests.harness.scp_driver import CommandResult, run_command
from tests.integration.conftest import INTERPRETERS

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ADDON = REPO / "output" / "TA-defender-lineage"
TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"


@pytest.fixture(params=sorted(INTERPRETERS), scope="module")
def python(request: pytest.FixtureRequest) -> str:
    path = INTERPRETERS[request.param]
    resolved = shutil.which(path) or (path if os.access(path, os.X_OK) else None)
    if resolved is None:
        message = f"!!! {request.param} interpreter not found at {path!r}: set {request.param.upper()} !!!"
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    return resolved


@pytest.fixture(scope="module")
def addon() -> Path:
    if not (ADDON / "bin" / "defenderlineage.py").exists():
        pytest.skip(f"{ADDON} is not built: run make build")
    return ADDON


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def _alert_record(raw: str, extracted: bool = True) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_raw": raw,
        "sourcetype": "ms:defender:graph:alert",
        "source": f"ms_graph://{TENANT}/security/alerts_v2",
        "_time": "1789374097",
    }
    if extracted:
        data = json.loads(raw)
        for key in ("id", "incidentId", "serviceSource", "detectionSource", "tenantId", "severity"):
            record[key] = str(data[key])
        record["mitreTechniques{}"] = data["mitreTechniques"]
    return record


def _run(addon: Path, python: str, records: list[dict[str, Any]], **kwargs: Any) -> CommandResult:
    result = run_command(addon, python, records, **kwargs)
    assert result.error is None, (result.error, result.stderr[-3000:])
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _assert_contract(record: dict[str, Any]) -> None:
    missing = [f for f in (*OUTPUT_FIELDS, *INCIDENT_OUTPUT_FIELDS) if f not in record]
    assert not missing, missing


def test_getinfo_is_stateful_and_records_get_the_contract(addon: Path, python: str) -> None:
    alert = _sample("alert_v2.json")
    incident = _sample("incident.json")
    records = [
        _alert_record(alert),
        {"_raw": incident, "sourcetype": "ms:defender:graph:incident"},
    ]
    result = _run(addon, python, records)
    # distributed=False: splunklib reports the streaming command as stateful, so it stays on the search head.
    assert result.getinfo["type"] == "stateful"
    assert len(result.records) == 2
    for record in result.records:
        _assert_contract(record)
    first, second = result.records
    assert first["lineage_path"].startswith("incident:31337 > microsoftDefenderForEndpoint > ")
    assert first["mitreTechniques{}"] == ["T1059.001", "T1105", "T1027"]  # multivalue survives
    assert second["lineage_layer"] == "incident" and second["incident_id"] == "31337"


def test_field_missing_from_first_record_still_arrives_later(addon: Path, python: str) -> None:
    alert = _sample("alert_v2.json")
    records = [{"_raw": "plain text, nothing to place"}, _alert_record(alert, extracted=False)]
    result = _run(addon, python, records)
    first, second = result.records
    assert first["alert_id"] == "" and first["lineage_warning"]
    assert second["alert_id"].startswith("da638912345678901234")
    assert second["service_source_label"] == "Microsoft Defender for Endpoint"


def test_bad_events_pass_with_a_warning(addon: Path, python: str) -> None:
    bad = [
        {"_raw": "not json", "sourcetype": "ms:defender:graph:alert", "keep": "1"},
        {"_raw": '{"id": "da1", "serviceSo', "sourcetype": "ms:defender:graph:alert", "keep": "2"},
        {"_raw": "[1,2]", "keep": "3"},
        {"_raw": json.dumps({"detectionSource": "\u202eодд\U0001f600", "serviceSource": None}), "keep": "4"},
        {"_raw": "", "keep": "5"},
    ]
    result = _run(addon, python, bad)
    assert [r["keep"] for r in result.records] == ["1", "2", "3", "4", "5"]
    for record in result.records:
        _assert_contract(record)
        assert record["lineage_warning"]
    assert "unparseable _raw" in result.records[0]["lineage_warning"]
    assert "unknown detectionSource" in result.records[3]["lineage_warning"]


def test_bad_option_fails_before_any_event(addon: Path, python: str) -> None:
    result = run_command(addon, python, [{"_raw": "{}"}], args=["incidents=maybe"])
    assert result.error is not None and "incidents=maybe" in result.error
    assert ("ERROR", "Illegal value: incidents=maybe") in result.messages
    assert result.chunks_sent == 0 and result.records == []
    assert result.returncode != 0


@pytest.mark.parametrize("args", [[], ["incidents=false"], ["incidents=t"]])
def test_incidents_option_accepted(addon: Path, python: str, args: list[str]) -> None:
    result = _run(addon, python, [{"_raw": "{}"}], args=args)
    assert len(result.records) == 1


def test_multi_chunk_stream(addon: Path, python: str) -> None:
    alert = _sample("alert_v2.json")
    records = [_alert_record(alert, extracted=i % 2 == 0) for i in range(2500)]
    for i, record in enumerate(records):
        record["serial"] = str(i)
    result = _run(addon, python, records, chunk_size=700)
    assert result.chunks_sent == 4
    assert [r["serial"] for r in result.records] == [str(i) for i in range(2500)]
    assert all(r["lineage_layer"] == "detection" and r["tenant_id"] == TENANT for r in result.records)


def test_empty_stream(addon: Path, python: str) -> None:
    result = _run(addon, python, [])
    assert result.chunks_sent == 1 and result.records == []


# --- hostile records (issue 12, item 1): every record comes back, the search never fails ------------

UNENCODABLE = "unencodable characters (lone surrogates) replaced with U+FFFD"
UNREADABLE = "unreadable bytes (invalid UTF-8 or NUL) replaced with U+FFFD"


def _neighbours(record: dict[str, Any]) -> list[dict[str, Any]]:
    """``record`` between two plain ones, each marked, so order and survival are checked too."""
    return [{"_raw": "{}", "keep": "before"}, {**record, "keep": "hostile"}, {"_raw": "{}", "keep": "after"}]


def _hostile(result: CommandResult) -> dict[str, Any]:
    assert [r["keep"] for r in result.records] == ["before", "hostile", "after"]
    for record in result.records:
        _assert_contract(record)
    return result.records[1]


def test_lone_surrogate_escape_landing_in_an_output_field(addon: Path, python: str) -> None:
    # Before: splunklib's writer raised UnicodeEncodeError, no reply, the search failed.
    raw = json.loads(_sample("alert_v2.json"))
    raw["id"] = "da0\udc0001"
    text = json.dumps(raw)  # ASCII: the surrogate travels as the JSON escape \udc00
    result = _run(addon, python, _neighbours({"_raw": text, "sourcetype": "ms:defender:graph:alert"}))
    record = _hostile(result)
    assert record["alert_id"] == "da0\ufffd01"
    assert record["lineage_path"].endswith("> alert:da0\ufffd01")
    assert record["lineage_warning"] == UNENCODABLE
    assert record["_raw"] == text


def test_nul_byte_in_a_field(addon: Path, python: str) -> None:
    # Before: splunklib's CSV reader on Python 3.9 refused the chunk ("line contains NUL").
    alert = _sample("alert_v2.json")
    result = _run(addon, python, _neighbours({**_alert_record(alert), "note": "a\x00b"}))
    record = _hostile(result)
    assert record["note"] == "a\ufffdb"
    assert record["lineage_layer"] == "detection" and record["incident_id"] == "31337"
    assert record["lineage_warning"] == UNREADABLE
    assert result.records[0]["lineage_warning"].count("U+FFFD") == 0


def test_field_above_ten_megabytes(addon: Path, python: str) -> None:
    # Before: splunklib's CSV reader refused a field above 10 MB (csv.field_size_limit) on both interpreters.
    raw = json.loads(_sample("alert_v2.json"))
    raw["description"] = "x" * (11 * 1024 * 1024)
    text = json.dumps(raw)
    result = _run(addon, python, _neighbours({"_raw": text, "sourcetype": "ms:defender:graph:alert"}))
    record = _hostile(result)
    assert len(record["_raw"]) == len(text) and record["_raw"] == text
    assert record["incident_id"] == "31337" and record["lineage_warning"] == ""


def test_invalid_utf8_on_the_wire(addon: Path, python: str) -> None:
    # Before: replaced silently; now the record says so.
    body = b'_raw,keep\n{},before\n"{""id"": ""a\xff\xfeb""}",hostile\n{},after\n'
    result = _run(addon, python, [], bodies=[body])
    record = _hostile(result)
    assert record["_raw"] == '{"id": "a\ufffd\ufffdb"}'
    assert UNREADABLE in record["lineage_warning"]
    assert "U+FFFD" not in result.records[2]["lineage_warning"]


def test_lone_surrogate_bytes_on_the_wire(addon: Path, python: str) -> None:
    # A producer that writes a lone surrogate as UTF-8 bytes (ED B0 80): invalid UTF-8, replaced.
    result = _run(addon, python, _neighbours({"_raw": "{}", "note": "x\udc00y"}), encoding_errors="surrogatepass")
    record = _hostile(result)
    assert record["note"] == "x\ufffd\ufffd\ufffdy"
    assert UNREADABLE in record["lineage_warning"]


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"id": "a", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_deeply_nested_raw(addon: Path, python: str, raw: str) -> None:
    result = _run(addon, python, _neighbours({"_raw": raw, "sourcetype": "ms:defender:graph:alert"}))
    record = _hostile(result)
    assert "unparseable _raw: nested too deeply" in record["lineage_warning"]


@pytest.mark.parametrize("value", ["1e3", "NaN", "1e400", "[1,2]", "true"])
def test_non_id_incident_id_is_not_invented(addon: Path, python: str, value: str) -> None:
    # Before: 1000.0, nan, inf, 1 and "" with no warning.
    raw = _sample("alert_v2.json").replace('"incidentId": "31337"', f'"incidentId": {value}')
    assert raw != _sample("alert_v2.json")
    result = _run(addon, python, _neighbours({"_raw": raw, "sourcetype": "ms:defender:graph:alert"}))
    record = _hostile(result)
    assert record["incident_id"] == ""
    assert record["lineage_path"].startswith("? > microsoftDefenderForEndpoint")
    assert "incidentId is not a string or integer id" in record["lineage_warning"]


def _on_the_wire(value: Any) -> Any:
    """What a value becomes once sent as (possibly invalid) UTF-8 and read back tolerantly."""
    if isinstance(value, list):
        return [_on_the_wire(v) for v in value]
    return value.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xff").decode("utf-8", "replace")


# Every code point, lone surrogates and NUL included.
_ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=20)
_ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_ANY_TEXT, inner, max_size=3),
    max_leaves=10,
)
_HOSTILE_RECORD = st.fixed_dictionaries(
    {
        "_raw": st.one_of(_ANY_JSON.map(json.dumps), _ANY_TEXT),
        "sourcetype": st.sampled_from(["ms:defender:graph:alert", "ms:defender:graph:incident", "other"]),
    },
    optional={
        "id": _ANY_TEXT,
        "incidentId": _ANY_TEXT,
        "note": _ANY_TEXT,
        "tags": st.lists(_ANY_TEXT, min_size=2, max_size=4),  # multivalue
    },
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_HOSTILE_RECORD, max_size=8), chunk_size=st.integers(1, 5))
def test_any_record_comes_back(addon: Path, python: str, records: list[dict[str, Any]], chunk_size: int) -> None:
    """Issue 12: arbitrary text (lone surrogates, NUL), arbitrary JSON in _raw, multivalue fields:
    the search completes and every record comes back, in order, with its fields."""
    for serial, record in enumerate(records):
        record["serial"] = str(serial)
    result = _run(addon, python, records, chunk_size=chunk_size, encoding_errors="surrogatepass")
    assert [r["serial"] for r in result.records] == [r["serial"] for r in records]
    for sent, back in zip(records, result.records):
        _assert_contract(back)
        changed = False
        for name, value in sent.items():
            expected = _on_the_wire(value)
            changed = changed or expected != value
            assert back.get(name, "") == expected, name
        if changed:
            assert UNREADABLE in back["lineage_warning"]


def test_rows_that_do_not_line_up_with_the_header(addon: Path, python: str) -> None:
    # A short row is padded, a long one cut (as splunklib's reader zips them): both come back.
    body = b"_raw,keep\n{},before\n{}\n{},hostile,extra\n{},after\n"
    result = _run(addon, python, [], bodies=[body])
    assert [r["keep"] for r in result.records] == ["before", "", "hostile", "after"]
    for record in result.records:
        _assert_contract(record)


def test_the_command_twice_overwrites_its_fields(addon: Path, python: str) -> None:
    first = _run(addon, python, [_alert_record(_sample("alert_v2.json"))]).records
    first[0]["lineage_path"] = "stale"
    first[0]["incident_service_sources"] = ["stale", "values"]
    again = _run(addon, python, first, args=["incidents=false"]).records
    assert again[0]["lineage_path"].startswith("incident:31337 > ")
    assert again[0]["incident_service_sources"] == ""
    assert again[0]["mitreTechniques{}"] == ["T1059.001", "T1105", "T1027"]
