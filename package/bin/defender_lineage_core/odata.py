"""Reads an OData collection page, keeping each item's own JSON text as Graph sent it.

Walking the page with the standard library's JSON scanner gives every item both as a dict (for
the cursor) and as the exact text Graph returned (for the event), so an event is Graph's own
bytes and the collector never pays for re-serialising what it just parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_BLANKS = frozenset(" \t\n\r")


class PageFormatError(ValueError):
    """The text is not a JSON object with a ``value`` list."""


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


def _expect(text: str, index: int, allowed: str) -> str:
    char = text[index : index + 1]
    if not char or char not in allowed:
        raise PageFormatError(f"expected one of {allowed!r} at offset {index}")
    return char


def parse_collection(
    text: str, spent: Optional[List[Any]] = None
) -> Tuple[List[Dict[str, Any]], List[str], Optional[Any]]:
    """Items, their JSON texts (same order) and ``@odata.nextLink`` of one page.

    Items that are not JSON objects are dropped; a page without a ``value`` list is an error.

    ``spent``: a list the caller is done with (the previous page's items), emptied one element per
    item read. CPython returns the memory of a page's ~150,000 small objects to the OS the moment
    the page is freed as a whole, and the next page faults it in again (~1,800 page faults a page);
    freed piece by piece while the next page is built, it is reused instead.
    """
    try:
        return _parse(text, spent if spent is not None else [])
    except (ValueError, IndexError) as exc:  # json.JSONDecodeError is a ValueError
        raise PageFormatError(str(exc)) from None


def _parse(text: str, spent: List[Any]) -> Tuple[List[Dict[str, Any]], List[str], Optional[Any]]:
    items: List[Dict[str, Any]] = []
    texts: List[str] = []
    next_link: Optional[Any] = None
    found_value = False
    index = _skip(text, 0)
    _expect(text, index, "{")
    index = _skip(text, index + 1)
    if text[index : index + 1] != "}":
        while True:
            key, index = _DECODER.raw_decode(text, index)
            if not isinstance(key, str):
                raise PageFormatError("object key is not a string")
            index = _skip(text, index)
            _expect(text, index, ":")
            index = _skip(text, index + 1)
            if key == "value" and text[index : index + 1] == "[":
                found_value = True
                items, texts = [], []  # as json.loads: the last duplicate key wins
                index = _read_array(text, index, items, texts, spent)
            else:
                value, index = _DECODER.raw_decode(text, index)
                if key == "value":
                    found_value = False
                elif key == "@odata.nextLink":
                    next_link = value
            index = _skip(text, index)
            if _expect(text, index, ",}") == "}":
                break
            index = _skip(text, index + 1)
    index = _skip(text, index + 1)
    if index != len(text):
        raise PageFormatError(f"unexpected data after the page at offset {index}")
    if not found_value:
        raise PageFormatError("the page has no 'value' list")
    return items, texts, next_link


def _read_array(text: str, index: int, items: List[Dict[str, Any]], texts: List[str], spent: List[Any]) -> int:
    # The hot loop of a backfill: Graph writes compact JSON, so "," or "]" right after an item is
    # tried before any whitespace is skipped.
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return index + 1
    scan = _DECODER.raw_decode
    while True:
        item, end = scan(text, index)
        if spent:
            spent.pop()
        if isinstance(item, dict):
            items.append(item)
            texts.append(text[index:end])
        char = text[end : end + 1]
        if char != "," and char != "]":
            end = _skip(text, end)
            char = _expect(text, end, ",]")
        if char == "]":
            return end + 1
        index = end + 1
        if text[index : index + 1] in _BLANKS:
            index = _skip(text, index)
