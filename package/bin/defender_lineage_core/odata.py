"""Reads an OData collection page, keeping each item's own JSON text as Graph sent it.

Walking the page with the standard library's JSON scanner gives every item both as a dict (for
the cursor) and as the exact text Graph returned (for the event), so an event is Graph's own
bytes and the collector never pays for re-serialising what it just parsed.

A page whose envelope is sound is read item by item: one item that cannot be read (invalid UTF-8
bytes, nesting too deep for the parser, a number too long to convert, not an object) does not
refuse its page. An item whose only fault is invalid bytes is repaired (each invalid byte becomes
U+FFFD, as a UTF-8 reader does with ``errors="replace"``) and kept; any other is left out. Each is
reported as a :class:`BadItem` so that the collector logs it once and counts it.

An ``id`` sent as a JSON number with a fraction or an exponent is read as :class:`JsonNumber`, a
float that remembers its JSON text: ``str()`` of it is that text, so the id ``1e3`` is keyed ``1e3``
everywhere (the cursor's de-duplication, the incident store), as an integer id is keyed by its
digits. Only the ``id`` (a rare case, looked at once per item): every float of a page read that way
cost ~8% of a page's JSON decoding.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple


class JsonNumber(float):
    """A JSON number with a fraction or an exponent; ``str()`` is its text as Graph sent it.

    ``json.dumps`` still writes it as a float (the encoder uses ``float.__repr__``)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = float.__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text


_DECODER = json.JSONDecoder()
_EXACT = json.JSONDecoder(parse_float=JsonNumber)  # for the rare paths that need a number's text
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_BLANKS = frozenset(" \t\n\r")


class PageFormatError(ValueError):
    """The text is not a JSON object with a ``value`` list."""


# Why an item of a sound page could not be read as it came.
INVALID_UTF8 = "invalid_utf8"
TOO_DEEP = "nesting_too_deep"
NOT_AN_OBJECT = "not_an_object"
INVALID_JSON = "invalid_json"


@dataclass(frozen=True)
class BadItem:
    """An item of ``value`` that could not be read as it came (see the module docstring)."""

    position: int  # 0-based place in the page's ``value`` list
    reason: str  # INVALID_UTF8, TOO_DEEP, NOT_AN_OBJECT or INVALID_JSON
    item_id: str  # its ``id`` when one could be read (JSON text for a number), else ""
    repaired: bool  # True: kept with U+FFFD for its invalid bytes; False: left out of the page
    stamp: Any = None  # its ``lastUpdateDateTime`` when one could be read
    item: Optional[Dict[str, Any]] = field(default=None, compare=False, repr=False)  # the repaired item


def parse_collection_bytes(
    content: bytes, spent: Optional[List[Any]] = None, bad: Optional[List[BadItem]] = None
) -> Tuple[List[Dict[str, Any]], List[str], Optional[Any]]:
    """``parse_collection`` of a body as Graph sent it (UTF-8, per RFC 8259 section 8.1).

    Invalid bytes are tolerated inside items (repaired there, reported in ``bad``); a page whose
    envelope or ``@odata.nextLink`` holds them is refused."""
    try:
        return parse_collection(content.decode("utf-8"), spent, bad)
    except UnicodeDecodeError:
        pass
    # The rare path: each invalid byte becomes a lone surrogate (U+DC80..U+DCFF), which valid UTF-8
    # can never produce, so the items holding one are exactly the items holding invalid bytes.
    items, texts, next_link = parse_collection(content.decode("utf-8", "surrogateescape"), spent, bad, escaped=True)
    if isinstance(next_link, str) and _ESCAPED_BYTE.search(next_link):
        raise PageFormatError("invalid UTF-8 bytes in @odata.nextLink")
    return items, texts, next_link


def parse_results_bytes(content: bytes, bad: List[BadItem]) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """A ``runHuntingQuery`` answer read row by row, as a listing page is read item by item: (the rows
    of ``results``, the envelope's other members such as ``schema``). A row holding invalid UTF-8 is
    repaired and a row that cannot be read is left out, each reported in ``bad`` (its ``item`` the
    repaired row); an envelope that is not sound raises PageFormatError. The rare path: a sound answer
    is read whole by ``json.loads`` (hunting.py)."""
    envelope: Dict[str, Any] = {}
    try:
        text, escaped = content.decode("utf-8"), False
    except UnicodeDecodeError:
        text, escaped = content.decode("utf-8", "surrogateescape"), True
    try:
        rows, _texts, _link = _parse(text, [], bad, escaped, "results", envelope)
    except (ValueError, IndexError) as exc:
        raise PageFormatError(str(exc)) from None
    except RecursionError:
        raise PageFormatError("a member of the answer is nested too deep to read") from None
    return rows, envelope


def _skip(text: str, index: int) -> int:
    match = _WHITESPACE.match(text, index)
    return match.end() if match else index


def _expect(text: str, index: int, allowed: str) -> str:
    char = text[index : index + 1]
    if not char or char not in allowed:
        raise PageFormatError(f"expected one of {allowed!r} at offset {index}")
    return char


def parse_collection(
    text: str, spent: Optional[List[Any]] = None, bad: Optional[List[BadItem]] = None, escaped: bool = False
) -> Tuple[List[Dict[str, Any]], List[str], Optional[Any]]:
    """Items, their JSON texts (same order) and ``@odata.nextLink`` of one page.

    Items that cannot be read, or are not JSON objects, are left out (or repaired) and reported in
    ``bad`` (see the module docstring); a page without a ``value`` list, or whose envelope is not
    JSON, is an error. ``escaped``: ``text`` was decoded with ``surrogateescape``.

    ``spent``: a list the caller is done with (the previous page's items), emptied one element per
    item read. CPython returns the memory of a page's ~150,000 small objects to the OS the moment
    the page is freed as a whole, and the next page faults it in again (~1,800 page faults a page);
    freed piece by piece while the next page is built, it is reused instead.
    """
    try:
        return _parse(text, spent if spent is not None else [], bad if bad is not None else [], escaped)
    except (ValueError, IndexError) as exc:  # json.JSONDecodeError is a ValueError
        raise PageFormatError(str(exc)) from None
    except RecursionError:  # an envelope member (not an item) nested deeper than the parser goes
        raise PageFormatError("a member of the page is nested too deep to read") from None


def _parse(
    text: str,
    spent: List[Any],
    bad: List[BadItem],
    escaped: bool,
    list_key: str = "value",
    envelope: Optional[Dict[str, Any]] = None,
) -> Tuple[List[Dict[str, Any]], List[str], Optional[Any]]:
    # ``list_key``: the member holding the items (``value``; ``results`` for hunting). ``envelope``: gets
    # every other member of the top-level object.
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
            if key == list_key and text[index : index + 1] == "[":
                found_value = True
                items, texts = [], []  # as json.loads: the last duplicate key wins
                del bad[:]
                index = _read_array(text, index, items, texts, spent, bad, escaped)
            else:
                value, index = _DECODER.raw_decode(text, index)
                if key == list_key:
                    found_value = False
                elif key == "@odata.nextLink":
                    next_link = value
                if envelope is not None and key != list_key:
                    envelope[key] = value
            index = _skip(text, index)
            if _expect(text, index, ",}") == "}":
                break
            index = _skip(text, index + 1)
    index = _skip(text, index + 1)
    if index != len(text):
        raise PageFormatError(f"unexpected data after the page at offset {index}")
    if not found_value:
        raise PageFormatError(f"the page has no '{list_key}' list")
    return items, texts, next_link


def _read_array(
    text: str,
    index: int,
    items: List[Dict[str, Any]],
    texts: List[str],
    spent: List[Any],
    bad: List[BadItem],
    escaped: bool,
) -> int:
    # The hot loop of a backfill: Graph writes compact JSON, so "," or "]" right after an item is
    # tried before any whitespace is skipped. Bad items leave it for ``_bad_item``.
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return index + 1
    scan = _DECODER.raw_decode
    position = 0
    while True:
        repaired: Optional[str] = None
        try:
            item, end = scan(text, index)
        except (ValueError, RecursionError) as exc:
            item, end, repaired = _bad_item(text, index, position, exc, bad)
        else:
            if escaped and _ESCAPED_BYTE.search(text, index, end):
                item, end, repaired = _bad_item(text, index, position, None, bad)
            elif not isinstance(item, dict):
                bad.append(BadItem(position, NOT_AN_OBJECT, "", repaired=False))
                item = None
            elif type(item.get("id")) is float:
                item["id"] = JsonNumber(_shallow_members(text[index:end])[0])
        if spent:
            spent.pop()
        if item is not None:
            items.append(item)
            texts.append(repaired or text[index:end])
        position += 1
        char = text[end : end + 1]
        if char != "," and char != "]":
            end = _skip(text, end)
            char = _expect(text, end, ",]")
        if char == "]":
            return end + 1
        index = end + 1
        if text[index : index + 1] in _BLANKS:
            index = _skip(text, index)


# --- items that cannot be read as they came --------------------------------------------------------

_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # an invalid byte, as decoded by ``surrogateescape``
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SCALAR = re.compile(r"[^\s,\]}]+")
_STRUCTURE = re.compile(r'["\[\]{}]')
_CLOSING = {"{": "}", "[": "]"}


def _bad_item(
    text: str, index: int, position: int, exc: Optional[BaseException], bad: List[BadItem]
) -> Tuple[Optional[Dict[str, Any]], int, Optional[str]]:
    """(the item repaired or None when it is left out, where it ends, the repaired text) for an
    item that cannot be read as it came; raises PageFormatError when not even its end can be found
    (the envelope is not sound)."""
    end = skip_value(text, index)
    raw = text[index:end]
    reason = _reason(exc)
    if _ESCAPED_BYTE.search(raw):
        repaired = _ESCAPED_BYTE.sub("\ufffd", raw)
        try:
            item, _ = _EXACT.raw_decode(repaired)
        except (ValueError, RecursionError) as again:
            reason = _reason(again)
        else:
            if isinstance(item, dict):
                key = item_id_text(item.get("id"))
                bad.append(BadItem(position, INVALID_UTF8, key, True, item.get("lastUpdateDateTime"), item))
                return item, end, repaired
            reason = NOT_AN_OBJECT
        raw = repaired
    key, stamp = _shallow_members(raw)
    bad.append(BadItem(position, reason, key, False, stamp))
    return None, end, None


def _reason(exc: Optional[BaseException]) -> str:
    return TOO_DEEP if isinstance(exc, RecursionError) else INVALID_JSON


def skip_value(text: str, index: int) -> int:
    """Where the JSON value at ``index`` ends, found without building it (and without recursion,
    whatever its depth); PageFormatError when it has no end."""
    char = text[index : index + 1]
    if char == '"':
        found = _STRING.match(text, index)
        if not found:
            raise PageFormatError(f"unterminated string at offset {index}")
        return found.end()
    if char not in _CLOSING:
        found = _SCALAR.match(text, index)
        if not found:
            raise PageFormatError(f"expected a value at offset {index}")
        return found.end()
    expected: List[str] = []
    position = index
    while True:
        found = _STRUCTURE.search(text, position)
        if not found:
            raise PageFormatError(f"unterminated value from offset {index}")
        char = found.group()
        if char == '"':
            string = _STRING.match(text, found.start())
            if not string:
                raise PageFormatError(f"unterminated string at offset {found.start()}")
            position = string.end()
            continue
        position = found.end()
        if char in _CLOSING:
            expected.append(_CLOSING[char])
        elif not expected or expected.pop() != char:
            raise PageFormatError(f"unbalanced {char!r} at offset {found.start()}")
        if not expected:
            return position


def _shallow_members(raw: str) -> Tuple[str, Any]:
    """(``id`` text, ``lastUpdateDateTime``) at the top level of an object's text that cannot be
    parsed whole (nested too deep, bad JSON further in): every other member is skipped unread.
    ("", None) for what cannot be found."""
    found: Dict[str, Any] = {}
    try:
        index = _skip(raw, 0)
        _expect(raw, index, "{")
        index = _skip(raw, index + 1)
        while raw[index : index + 1] == '"':
            key, index = _DECODER.raw_decode(raw, index)
            index = _skip(raw, index)
            _expect(raw, index, ":")
            start = _skip(raw, index + 1)
            end = skip_value(raw, start)
            if key in ("id", "lastUpdateDateTime"):
                found[key], _ = _EXACT.raw_decode(raw[start:end])
            index = _skip(raw, end)
            if raw[index : index + 1] != ",":
                break
            index = _skip(raw, index + 1)
    except (ValueError, RecursionError):
        pass
    return item_id_text(found.get("id")), found.get("lastUpdateDateTime")


def item_id_text(value: Any) -> str:
    """An item's ``id`` as the key it is known by: the string itself, or a number's JSON text
    (``str`` of an int is its digits; of a :class:`JsonNumber`, its text). "" for anything else
    (null, true/false, objects, lists), which keys nothing."""
    if type(value) is str:
        return value
    if isinstance(value, (int, JsonNumber)) and not isinstance(value, bool):
        return str(value)
    return ""
