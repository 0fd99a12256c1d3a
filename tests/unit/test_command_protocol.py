"""defenderlineage's conversation with splunkd, in process (the built command's runs are in
tests/integration/test_command.py): option errors, protocol errors, empty chunks."""

from __future__ import annotations

import io
import sys
import types
from typing import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.harness.scp_driver import csv_to_records, encode_chunk, getinfo_metadata, read_chunk, records_to_csv

# The generated import_declare_test only puts lib/ on sys.path; the venv already has splunklib.
sys.modules.setdefault("import_declare_test", types.ModuleType("import_declare_test"))
import defenderlineage  # noqa: E402

from defender_lineage_core.incident_store import IncidentView, empty_output_fields  # noqa: E402


@pytest.fixture(autouse=True)
def _switch_interval_restored() -> Iterator[None]:
    """run() shortens the GIL switch interval of its process (the command's own): not pytest's."""
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


def _converse(*chunks: bytes) -> tuple[int, list[tuple[dict, bytes]]]:
    out = io.BytesIO()
    status = defenderlineage.run(io.BytesIO(b"".join(chunks)), out)
    stream, replies = io.BytesIO(out.getvalue()), []
    while (reply := read_chunk(stream)) is not None:
        replies.append(reply)
    return status, replies


def _getinfo(*args: str) -> bytes:
    return encode_chunk(getinfo_metadata(list(args), "dispatch", "http://127.0.0.1:1", "x", "defenderlineage"))


def test_options_parse_as_splunklib_words_them() -> None:
    assert defenderlineage.parse_options(["incidents=No", "field"]) == ({"incidents": False}, [])
    assert defenderlineage.parse_options(["incidents=maybe", "x=1"])[1] == [
        "Illegal value: incidents=maybe",
        "Unrecognized option: x=1",
    ]


def test_a_bad_option_ends_the_search_at_getinfo() -> None:
    status, replies = _converse(_getinfo("incidents=maybe"), encode_chunk({"action": "execute"}, b"a\n1\n"))
    assert status == 1
    assert replies == [
        ({"type": "stateful", "inspector": {"messages": [["ERROR", "Illegal value: incidents=maybe"]]}}, b"")
    ]


def test_an_unexpected_action_is_an_error_reply_not_a_crash() -> None:
    body = records_to_csv([{"_raw": "{}"}])
    status, replies = _converse(
        _getinfo("incidents=false"),
        encode_chunk({"action": "execute", "finished": False}, body),
        encode_chunk({"action": "bogus"}),
    )
    assert status == 1
    assert replies[0][0] == {"type": "stateful"}
    assert len(csv_to_records(replies[1][1])) == 1
    (meta, _) = replies[2]
    assert meta["finished"] is True
    ((level, text),) = meta["inspector"]["messages"]
    # splunklib's wording for an unexpected error: <type> at "<file>", line <n> : <error>
    assert level == "ERROR" and text.startswith("ProtocolError at ")
    assert text.endswith(" : Expected execute action, not bogus")


@pytest.mark.parametrize("first", [b"not a header\n", encode_chunk({"action": "execute"})])
def test_no_getinfo_first_is_an_error_reply(first: bytes) -> None:
    status, replies = _converse(first)
    assert status == 1
    ((meta, _),) = replies
    assert meta["finished"] is True and meta["inspector"]["messages"][0][0] == "ERROR"


def test_empty_and_header_only_chunks_get_empty_replies() -> None:
    status, replies = _converse(
        _getinfo("incidents=false"),
        encode_chunk({"action": "execute", "finished": False}, b""),
        encode_chunk({"action": "execute", "finished": True}, b"_raw,x\n"),
    )
    assert status == 0
    assert replies[1:] == [({"finished": False}, b""), ({"finished": True}, b"")]


def test_the_cycle_collector_is_paused_for_a_chunk_and_back_after_even_a_failure() -> None:
    # Issue 18: a chunk's waiting events made every full collection walk them all again.
    import gc

    assert gc.isenabled()
    with defenderlineage.cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), defenderlineage.cyclic_gc_paused():
        raise RuntimeError("a chunk failed")
    assert gc.isenabled()
    gc.disable()  # a collector the host had turned off stays off
    try:
        with defenderlineage.cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


_TEXTS = st.text(max_size=12)
_VIEWS = st.builds(
    IncidentView,
    tenant_id=st.just("t"),
    incident_id=st.just("1"),
    original_id=st.just("1"),
    found=st.booleans(),
    title=_TEXTS,
    severity=_TEXTS,
    status=_TEXTS,
    alert_ids=st.lists(_TEXTS, max_size=3).map(tuple),
    service_sources=st.lists(_TEXTS, max_size=3).map(tuple),
    detection_sources=st.lists(_TEXTS, max_size=3).map(tuple),
)


@given(view=_VIEWS)
def test_a_rows_end_is_the_incident_cells_the_slow_way_writes(view: IncidentView) -> None:
    # Two encoders of the same cells: row_end (once per incident, the usual way) and incident_tail of
    # output_fields (a row written again whole). A row must not depend on which one wrote it.
    try:
        expected = (defenderlineage.incident_tail(view.output_fields()) + "\r\n").encode("utf-8")
    except UnicodeEncodeError:
        expected = None
    assert defenderlineage.row_end(view) == expected
    assert defenderlineage.row_end(None) == (defenderlineage.incident_tail(empty_output_fields()) + "\r\n").encode()
