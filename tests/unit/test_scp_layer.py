"""defender_lineage_scp, the command's own protocol layer: checked on the real splunkd recording
(byte for byte where the recording allows) and on what splunklib's reader refuses."""

from __future__ import annotations

import gzip
import io
import json

import defender_lineage_scp as scp
import pytest

from tests.fixture_paths import RECORDINGS
from tests.harness.scp_driver import csv_to_records, encode_chunk, read_chunk


def _recording(name: str) -> bytes:
    data = (RECORDINGS / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def _frames(data: bytes) -> list[bytes]:
    """The recording cut into whole chunks (header, metadata, body), without the SDK recorder's newlines."""
    stream, frames = io.BytesIO(data), []
    while True:
        start = stream.tell()
        chunk = read_chunk(stream)
        if chunk is None:
            return frames
        frame = data[start : stream.tell()]
        frames.append(frame.lstrip(b"\r\n"))


def test_reads_splunkds_chunks_as_recorded() -> None:
    stream = io.BytesIO(_recording("countmatches.input.gz"))
    getinfo = scp.read_chunk(stream)
    execute = scp.read_chunk(stream)
    assert scp.read_chunk(stream) is None
    assert getinfo is not None and execute is not None
    assert getinfo[0]["action"] == "getinfo" and getinfo[1] == b""
    assert getinfo[0]["searchinfo"]["args"] == ["fieldname=word_count", "pattern=\\w+", "text"]
    assert execute[0] == {"action": "execute", "finished": True}
    header, rows, replaced = scp.parse_body(execute[1])
    assert header == ["_serial", "_time", "text", "__mv__serial", "__mv__time", "__mv_text"]
    assert not replaced and len(rows) == 500
    expected = csv_to_records(execute[1])
    assert [dict(zip(header[:3], row[:3])) for row in rows] == expected


def test_writes_the_recorded_replies_byte_for_byte() -> None:
    frames = _frames(_recording("countmatches.output"))
    getinfo_reply, *_, last = frames
    out = io.BytesIO()
    scp.write_chunk(out, {"type": "streaming", "inspector": None})
    assert out.getvalue() == getinfo_reply
    body = last[last.index(b"}") + 1 :]
    header, rows, _ = scp.parse_body(body)
    writer = scp.RecordsWriter()
    for row in [header, *rows]:
        assert writer.write_row(row)
    out = io.BytesIO()
    scp.write_chunk(out, {"inspector": None, "finished": True}, writer)
    assert out.getvalue() == last


def test_a_chunk_and_its_metadata_frame_as_the_driver_reads_them() -> None:
    writer = scp.RecordsWriter()
    writer.write_row(["a", "__mv_a"])
    writer.write_row(["x\ny", "$x$;$y$"])
    out = io.BytesIO()
    scp.write_chunk(out, {"inspector": {"messages": [["WARN", "ü"]]}, "finished": False}, writer)
    meta, body = read_chunk(io.BytesIO(out.getvalue())) or ({}, b"")
    assert meta == {"inspector": {"messages": [["WARN", "ü"]]}, "finished": False}
    assert b"\\u00fc" in out.getvalue()  # ASCII-escaped, as splunklib's encoder writes it
    assert csv_to_records(body) == [{"a": ["x", "y"]}]


def test_nothing_is_written_for_an_empty_reply() -> None:
    out = io.BytesIO()
    scp.write_chunk(out, {"inspector": None})
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("body", "cell"),
    [
        (b"f\na\x00b\n", "a\ufffdb"),  # NUL: the CSV reader of Python 3.9 refuses it
        (b"f\na\xff\xfeb\n", "a\ufffd\ufffdb"),  # not UTF-8
        (b'f\n"a\xed\xb0\x80b"\n', "a\ufffd\ufffd\ufffdb"),  # a lone surrogate's bytes
    ],
)
def test_unreadable_bytes_are_replaced_and_flagged(body: bytes, cell: str) -> None:
    header, rows, replaced = scp.parse_body(body)
    assert header == ["f"] and rows == [[cell]] and replaced


def test_a_readable_body_is_not_flagged_even_after_one_that_was() -> None:
    scp.parse_body(b"f\n\xff\n")
    assert scp.parse_body("f\nü\ufffd\n".encode()) == (["f"], [["ü\ufffd"]], False)


def test_no_field_size_limit_short_of_the_body() -> None:
    big = "x" * (11 * 1024 * 1024)
    _, rows, _ = scp.parse_body(f'f,g\n"{big}",1\n'.encode())
    assert rows == [[big, "1"]]


def test_rows_are_padded_or_cut_to_the_header() -> None:
    assert scp.parse_body(b"a,b\n1\n1,2,3\n")[1] == [["1", ""], ["1", "2"]]


def test_an_unencodable_cell_is_refused_then_made_safe() -> None:
    writer = scp.RecordsWriter()
    assert not writer.write_row(["ok", "da0\udc0001"])
    assert writer.rows == 0 and writer.size == 0
    assert writer.write_row(scp.make_safe(["ok", "da0\udc0001"]))
    assert b"".join(writer.parts) == "ok,da0\ufffd01\r\n".encode()


@pytest.mark.parametrize(
    ("value", "cells"),
    [("a", ("a", "")), ([], ("", "")), (["a"], ("a", "")), (["a", "b$"], ("a\nb$", "$a$;$b$$$")), (None, ("", ""))],
)
def test_output_values_encode_as_splunklibs_writer_does(value: object, cells: tuple[str, str]) -> None:
    assert scp.encode_cells(value) == cells


def test_decode_mv() -> None:
    assert scp.decode_mv("$a$;$$$$;$b$$c$") == ["a", "$", "b$c"]


def test_session_error_reply_and_bad_framing() -> None:
    out = io.BytesIO()
    session = scp.Session(io.BytesIO(encode_chunk({"action": "execute"})), out)
    with pytest.raises(scp.ProtocolError, match="Expected getinfo action, not execute"):
        session.read_getinfo()
    session.reply_error("Expected getinfo action, not execute")
    meta, _ = read_chunk(io.BytesIO(out.getvalue())) or ({}, b"")
    assert meta == {"inspector": {"messages": [["ERROR", "Expected getinfo action, not execute"]]}, "finished": True}
    with pytest.raises(scp.ProtocolError, match="transport header"):
        scp.read_chunk(io.BytesIO(b"chunked 2.0,1,1\n{}"))
    with pytest.raises(scp.ProtocolError, match="ended after"):
        scp.read_chunk(io.BytesIO(b"chunked 1.0,2,10\n{}abc"))
    assert json.loads(scp.encode_metadata({"a": None, "b": 1})) == {"b": 1}


def test_rows_begun_now_and_ended_later_come_out_in_their_places() -> None:
    # defenderlineage begins a row as it places the record and ends it once its incident is fetched;
    # a row it must re-encode whole takes a held place; the reply's size counts what is written.
    writer = scp.RecordsWriter()
    writer.write_line("a,b")
    first = writer.write_start("1,")
    held = writer.hold_row()
    third = writer.write_start("3,é")
    rewritten = writer.write_start("4,old")
    assert writer.write_start("5,\ud800") == -1  # cannot be encoded: nothing written
    writer.end_row(third, b",x\r\n")
    whole = scp.RecordsWriter()
    whole.write_row(["2", "y,z"])
    writer.put_row(held, whole)
    writer.end_row(first, b"w\r\n")
    again = scp.RecordsWriter()
    again.write_row(["4", "new"])
    writer.put_row(rewritten, again, replace_start=True)
    body = b"".join(writer.parts)
    assert body == 'a,b\r\n1,w\r\n2,"y,z"\r\n3,é,x\r\n4,new\r\n'.encode()
    assert writer.size == len(body)
    assert writer.rows == 5
