"""The page reader agrees with json.loads and keeps each item's exact text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from defender_lineage_core.odata import PageFormatError, parse_collection

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
