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

from defender_lineage_core.incident_store import INCIDENT_OUTPUT_FIELDS
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
