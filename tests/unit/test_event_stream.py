"""The inputs' fast event writer produces exactly the XML splunklib's Event.write_to produces."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest
from defender_lineage_eventstream import PIPE_CAPACITY, EventSink, event_text
from splunklib import modularinput as smi

from defender_lineage_core.collector import Version

ITEMS = [
    {"id": "a", "lastUpdateDateTime": "2026-11-20T10:00:26.9875Z", "title": "plain"},
    {"id": "b&<>", "lastUpdateDateTime": "2026-11-20T10:00:26Z", "title": "quotes \" ' and ]]> and &amp;"},
    {"id": "c", "lastUpdateDateTime": "2026-11-20T10:00:26.1234567Z", "title": "Ünïcødé ✓ 漢字 😀 \n\t\r\x01"},
    {"id": "d", "title": "no time"},
]


def splunklib_stream(item: dict, when: float) -> str:
    out = io.StringIO()
    writer = smi.EventWriter(output=out)
    writer.write_event(
        smi.Event(
            data=event_text(item),
            time=when,
            index="defender",
            sourcetype="ms:defender:graph:alert",
            source="ms_graph://t/security/alerts_v2",
        )
    )
    return out.getvalue()


@pytest.mark.parametrize("item", ITEMS)
def test_same_bytes_as_splunklib(item: dict):
    ticks = 17636304269875000 + len(item["id"])
    out = io.StringIO()
    sink = EventSink(
        smi.EventWriter(output=out), "defender", "ms:defender:graph:alert", "ms_graph://t/security/alerts_v2"
    )
    sink([Version(item, ticks)])
    assert out.getvalue() == splunklib_stream(item, ticks / 10_000_000)


def test_json_survives_and_unsafe_characters_are_escaped():
    assert json.loads(event_text(ITEMS[2])) == ITEMS[2]
    lone = {"id": "x", "title": "bad \ud800 surrogate and \ufffe"}
    text = event_text(lone)
    text.encode("utf-8")  # must not raise
    assert "\ufffe" not in text and json.loads(text) == lone


def test_graphs_own_text_is_kept_when_it_is_one_line():
    own = '{"id":"a","t":"\\u00e9"}'
    assert event_text({"id": "a", "t": "é"}, own) == own
    pretty = '{\n  "id": "a"\n}'
    assert event_text({"id": "a"}, pretty) == '{"id":"a"}'


def _sink_stream(batch: list) -> str:
    out = io.StringIO()
    sink = EventSink(
        smi.EventWriter(output=out), "defender", "ms:defender:graph:alert", "ms_graph://t/security/alerts_v2"
    )
    sink(batch)
    return out.getvalue()


def _splunklib_page(batch: list) -> str:
    out = io.StringIO()
    writer = smi.EventWriter(output=out)
    for version in batch:
        writer.write_event(
            smi.Event(
                data=event_text(version.item, version.text),
                time=version.ticks / 10_000_000,
                index="defender",
                sourcetype="ms:defender:graph:alert",
                source="ms_graph://t/security/alerts_v2",
            )
        )
    return out.getvalue()


def test_a_page_is_escaped_as_splunklib_escapes_each_event():
    # Events with and without characters to escape, Graph's own text and re-serialised objects.
    batch = [Version(item, 17636304269875000 + n, None) for n, item in enumerate(ITEMS * 3)]
    batch.append(Version({"id": "own"}, 17636304269875999, '{"id":"own","x":"<&>"}'))
    for n, lone in enumerate("&<>"):  # each character to escape on its own
        batch.append(Version({"id": lone}, 17636304269876000 + n, f'{{"id":"{lone}","x":"a {lone} b"}}'))
    assert _sink_stream(batch) == _splunklib_page(batch)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe capacity is a Linux setting")
def test_the_pipe_to_splunkd_is_enlarged_for_a_page_of_events():
    fcntl = pytest.importorskip("fcntl")
    F_GETPIPE_SZ = 1032  # Linux; fcntl names it from Python 3.10 on
    read_fd, write_fd = os.pipe()
    try:
        out = io.TextIOWrapper(os.fdopen(write_fd, "wb", closefd=False), encoding="utf-8")
        sink = EventSink(smi.EventWriter(output=out), "main", "st", "src")
        assert fcntl.fcntl(write_fd, F_GETPIPE_SZ) == 64 * 1024  # Linux's default
        sink.write("")
        limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        assert fcntl.fcntl(write_fd, F_GETPIPE_SZ) == min(PIPE_CAPACITY, limit)
        out.flush()
        assert os.read(read_fd, 100) == b"<stream>"
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_a_stream_that_is_not_a_pipe_is_left_alone():
    out = io.StringIO()
    EventSink(smi.EventWriter(output=out), "main", "st", "src").write("<event/>")
    assert out.getvalue() == "<stream><event/>"
