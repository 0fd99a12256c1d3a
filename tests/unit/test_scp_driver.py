"""The chunked-protocol driver frames and encodes exactly as splunkd does (checked on a recording)."""

from __future__ import annotations

import gzip
import io

import pytest

from tests.fixture_paths import RECORDINGS
from tests.harness.scp_driver import (
    csv_to_records,
    decode_mv,
    encode_chunk,
    read_chunk,
    records_to_csv,
)

# The recording's getinfo metadata was re-serialised by the SDK's recorder with json's default
# separators; the execute chunks are splunkd's own compact JSON.
RECORDER_SEPARATORS = (", ", ": ")


def _recording(name: str) -> bytes:
    data = (RECORDINGS / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def _chunks(data: bytes) -> list[tuple[dict, bytes]]:
    stream = io.BytesIO(data)
    chunks = []
    while (chunk := read_chunk(stream)) is not None:
        chunks.append(chunk)
    return chunks


def test_input_recording_reencodes_byte_for_byte() -> None:
    data = _recording("countmatches.input.gz")
    chunks = _chunks(data)
    assert [c[0].get("action") for c in chunks] == ["getinfo", "execute"]
    getinfo, execute = chunks
    assert set(getinfo[0]) == {"action", "preview", "searchinfo"}
    assert set(getinfo[0]["searchinfo"]) == {
        "args", "raw_args", "dispatch_dir", "session_key", "splunkd_uri", "app", "owner",
        "username", "sid", "search", "earliest_time", "latest_time", "splunk_version",
    }  # fmt: skip
    assert execute[0] == {"action": "execute", "finished": True}
    again = encode_chunk(getinfo[0], getinfo[1], RECORDER_SEPARATORS) + encode_chunk(*execute)
    assert again == data


def test_input_body_reencodes_byte_for_byte_from_records() -> None:
    (_, _), (_, body) = _chunks(_recording("countmatches.input.gz"))
    records = csv_to_records(body)
    assert len(records) == 500
    assert list(records[0]) == ["_serial", "_time", "text"]
    assert records_to_csv(records) == body


def test_output_recording_records() -> None:
    chunks = _chunks(_recording("countmatches.output"))
    assert chunks[0] == ({"type": "streaming"}, b"")
    assert chunks[-1][0] == {"finished": True}
    records = csv_to_records(chunks[-1][1])
    assert len(records) == 500
    assert records[0]["word_count"] == "14"
    assert records[1] == {"_serial": "1", "_time": "1380899494", "text": "Tú novia te ama mucho", "word_count": "5"}
    assert all(r["word_count"].isdigit() for r in records)


@pytest.mark.parametrize(
    "value",
    [["a", "b"], ["$x$", "y$$", ""], ["with,comma", 'with "quote"', "new\nline"], ["ünï", "😀"]],
)
def test_multivalue_round_trip(value: list[str]) -> None:
    records = [{"f": value, "g": "plain"}]
    body = records_to_csv(records)
    assert csv_to_records(body) == records


def test_mv_encoding_matches_splunkd() -> None:
    body = records_to_csv([{"f": ["a$b", "c"]}])
    assert body == b'f,"__mv_f"\n"a$b\nc","$a$$b$;$c$"\n'
    assert decode_mv("$a$$b$;$c$") == ["a$b", "c"]


def test_missing_fields_are_empty_and_single_values_stay_strings() -> None:
    body = records_to_csv([{"a": "1"}, {"b": ["only"]}, {"a": [], "b": None}])
    assert csv_to_records(body) == [{"a": "1", "b": ""}, {"a": "", "b": "only"}, {"a": "", "b": ""}]


def test_truncated_stream_is_an_error() -> None:
    with pytest.raises(EOFError):
        read_chunk(io.BytesIO(b"chunked 1.0,10,0\n{}"))
    with pytest.raises(ValueError, match="not a chunk header"):
        read_chunk(io.BytesIO(b"garbage\n"))
    assert read_chunk(io.BytesIO(b"")) is None
