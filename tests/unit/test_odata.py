"""The page reader agrees with json.loads and keeps each item's exact text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defender_lineage_core.odata import (
    INVALID_JSON,
    INVALID_UTF8,
    NOT_AN_OBJECT,
    TOO_DEEP,
    BadItem,
    JsonNumber,
    PageFormatError,
    item_id_text,
    parse_collection,
    parse_collection_bytes,
    skip_value,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4) | json_values, max_size=6),
    st.one_of(st.none(), st.text(max_size=20)),
    st.booleans(),
)
def test_agrees_with_json_loads(value, next_link, pretty):
    page = {"@odata.context": "x", "value": value}
    if next_link is not None:
        page["@odata.nextLink"] = next_link
    text = json.dumps(page, indent=2 if pretty else None, ensure_ascii=False)
    items, texts, link = parse_collection(text)
    assert items == [v for v in value if isinstance(v, dict)]
    assert [json.loads(t) for t in texts] == items
    assert link == next_link


def test_item_text_is_graphs_own_bytes():
    text = '{"value":[ {"id":"a","t":"\\u00e9\\/x"} ,{"id":"b"}],"@odata.nextLink":"https://g/next"}'
    items, texts, link = parse_collection(text)
    assert texts == ['{"id":"a","t":"\\u00e9\\/x"}', '{"id":"b"}']
    assert items[0]["t"] == "é/x" and link == "https://g/next"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "[]",
        '{"value": 5}',
        '{"other": []}',
        '{"value": [{"id": 1}',
        '{"value": []} trailing',
        '{"value": [1 2]}',
        "<html>503</html>",
        '{"value": [], }',
    ],
)
def test_malformed_pages_are_refused(bad):
    with pytest.raises(PageFormatError):
        parse_collection(bad)


@given(
    st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=6),
    st.lists(st.integers(), max_size=8),
)
def test_a_spent_list_is_emptied_one_element_per_item_and_changes_nothing_read(value, spent):
    text = json.dumps({"value": value})
    before = list(spent)
    items, texts, _ = parse_collection(text, spent)
    assert items == value and [json.loads(t) for t in texts] == value
    # One element released per item read, from the end; what the page did not need stays.
    assert spent == before[: max(0, len(before) - len(value))]


# ---- item by item: one unreadable item does not refuse its page (issue 12, item 3) ---------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def _read(body: bytes):
    bad: list = []
    items, texts, link = parse_collection_bytes(body, None, bad)
    return items, texts, link, bad


def test_invalid_bytes_inside_one_item_are_replaced_and_the_page_is_kept():
    body = b'{"value":[{"id":"a"},{"id":"b","t":"x\xff\xc3(y"},{"id":"c"}]}'
    items, texts, _, bad = _read(body)  # today: UnicodeDecodeError, the whole page refused
    assert [i["id"] for i in items] == ["a", "b", "c"]
    assert items[1]["t"] == "x\ufffd\ufffd(y" and texts[1] == '{"id":"b","t":"x\ufffd\ufffd(y"}'
    assert bad == [BadItem(1, INVALID_UTF8, "b", True)]


def test_an_item_nested_too_deep_is_left_out_naming_its_id():
    body = (
        b'{"value":[{"id":"a"},{"id":"deep","lastUpdateDateTime":"2026-11-20T00:00:00Z","x":' + DEEP + b'},{"id":"c"}]}'
    )
    items, texts, _, bad = _read(body)  # today: RecursionError, uncaught
    assert [i["id"] for i in items] == ["a", "c"] and texts == ['{"id":"a"}', '{"id":"c"}']
    assert bad == [BadItem(1, TOO_DEEP, "deep", False, "2026-11-20T00:00:00Z")]


def test_items_that_are_not_objects_are_reported():
    items, _, _, bad = _read(b'{"value":[1,{"id":"a"},"s",null,[{"id":"x"}]]}')
    assert [i["id"] for i in items] == ["a"]
    assert [(b.position, b.reason) for b in bad] == [
        (0, NOT_AN_OBJECT),
        (2, NOT_AN_OBJECT),
        (3, NOT_AN_OBJECT),
        (4, NOT_AN_OBJECT),
    ]


def test_other_unreadable_items_are_left_out():
    body = (
        b'{"value":[{"id":"big","n":' + b"7" * 5000 + b"},"  # over Python's int conversion limit
        b'{"id":"ctl","t":"a\x01b"},'  # a raw control character: not JSON (RFC 8259 section 7)
        b'{"id":7,"t":"\xff" \xff},'  # invalid bytes outside a string: replaced, still not JSON
        b'{"id":"ok"}]}'
    )
    items, _, _, bad = _read(body)
    assert [i["id"] for i in items] == ["ok"]
    assert [(b.item_id, b.reason, b.repaired) for b in bad] == [
        ("big", INVALID_JSON, False),
        ("ctl", INVALID_JSON, False),
        ("7", INVALID_JSON, False),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b'{"value":[{"id":"a","x":[[[}]}',  # an item whose end cannot be found: the envelope is not sound
        b'{"value":[{"id":"a"}],"@odata.nextLink":"https://g/\xff"}',  # a link with invalid bytes
        b'{"value":[],"x":' + DEEP + b"}",  # an envelope member too deep
        b'{"value":[{"id":"a"}' + b"\xff",
    ],
)
def test_pages_whose_envelope_is_not_sound_are_still_refused(body):
    with pytest.raises(PageFormatError):
        _read(body)


def test_numbers_keep_their_json_text():
    items, _, _, _ = _read(b'{"value":[{"id":1e3,"n":12,"f":1.50,"ok":true}]}')
    item = items[0]
    assert isinstance(item["id"], JsonNumber) and str(item["id"]) == "1e3" and item["id"] == 1000.0
    assert (item_id_text(item["id"]), item_id_text(item["n"]), item_id_text(item["ok"])) == ("1e3", "12", "")
    assert json.dumps(item) == json.dumps(json.loads('{"id":1e3,"n":12,"f":1.50,"ok":true}'))


@settings(deadline=None, max_examples=40)  # a 100,000-deep item takes ~0.1 s to find the end of
@given(st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=5), st.data())
def test_one_bad_item_anywhere_leaves_the_others_as_json_loads_reads_them(value, data):
    position = data.draw(st.integers(min_value=0, max_value=len(value)))
    kind = data.draw(st.sampled_from(["deep", "bytes", "scalar"]))
    good = [json.dumps(v, ensure_ascii=False).encode() for v in value]
    bad_text = {"deep": b'{"id":"z","x":' + DEEP + b"}", "bytes": b'{"id":"z","t":"\xfe"}', "scalar": b"17"}[kind]
    body = b'{"value":[' + b",".join([*good[:position], bad_text, *good[position:]]) + b"]}"
    items, texts, _, bad = _read(body)
    expected = value[:position] + ([{"id": "z", "t": "\ufffd"}] if kind == "bytes" else []) + value[position:]
    assert items == expected and [json.loads(t) for t in texts] == expected
    assert len(bad) == 1 and bad[0].position == position


@given(json_values, st.booleans())
def test_skip_value_finds_where_json_loads_stops(value, pretty):
    text = json.dumps(value, indent=2 if pretty else None, ensure_ascii=False)
    assert skip_value(text + ',"next"', 0) == len(text)
