import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from defender_lineage_core.timestamps import (
    MAX_TICKS,
    MIN_TICKS,
    TICKS_PER_SECOND,
    format_instant,
    in_range,
    parse_instant,
)


def test_trimmed_fractions_compare_as_instants_not_text():
    # Graph trims trailing zeros: as text "26.9875Z" > "26.98750001Z"-style comparisons go wrong.
    a = parse_instant("2026-11-20T10:00:26.9875Z")
    b = parse_instant("2026-11-20T10:00:26.98750Z")
    c = parse_instant("2026-11-20T10:00:26.9875001Z")
    assert a == b
    assert a is not None and c is not None and c == a + 1
    assert "2026-11-20T10:00:26.9875Z" > "2026-11-20T10:00:26.9875001Z"  # the text order is wrong


def test_formats_and_offsets():
    ticks = parse_instant("2026-11-20T10:00:26Z")
    assert ticks is not None
    assert format_instant(ticks) == "2026-11-20T10:00:26.0000000Z"
    assert parse_instant("2026-11-20T11:00:26+01:00") == ticks
    assert parse_instant("2026-11-20") == parse_instant("2026-11-20T00:00:00Z")
    assert parse_instant("2026-11-20T10:00:26.123456789Z") == ticks + 1234567  # beyond 100 ns is cut


def test_rejects_non_timestamps():
    for bad in (None, 5, "", "yesterday", "2026-13-01T00:00:00Z", "2026-11-20T25:00:00Z"):
        assert parse_instant(bad) is None


@given(st.integers(min_value=0, max_value=4_000_000_000 * TICKS_PER_SECOND))
def test_round_trip(ticks):
    assert parse_instant(format_instant(ticks)) == ticks


def _reference(text):
    """The straightforward datetime-based reading parse_instant's fast path must agree with."""
    import datetime as dt
    import re

    m = re.match(
        r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}:?\d{2})?$",
        text.strip(),
    )
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        moment = dt.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), tzinfo=dt.timezone.utc
        )
    except ValueError:
        return None
    offset = 0
    if zone and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset = (-1 if zone[0] == "-" else 1) * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    whole = (moment - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(seconds=1) - offset
    return whole * TICKS_PER_SECOND + int((frac or "0")[:7].ljust(7, "0"))


_digits = st.text(alphabet="0123456789", min_size=2, max_size=2)


def _mostly_in(low, high):
    """Two digits, in range about half of the time."""
    return st.one_of(st.integers(low, high).map(lambda v: f"{v:02d}"), _digits)


@settings(max_examples=500)
@example("2026", "11", "20", ("T", "24", "00", "00"), None, "Z")
@example("2026", "11", "20", ("T", "23", "60", "00"), None, "Z")
@example("2026", "11", "20", ("T", "23", "59", "60"), None, "Z")
@example("2025", "02", "29", None, None, "")
@example("2024", "02", "29", ("T", "23", "59", "59"), "9999999", "-0530")
@example("0000", "01", "01", None, None, "")
@example("1969", "12", "31", ("T", "23", "59", "59"), "1", "+01:00")
@example("2026", "11", "20", ("T", "23", "20", "29"), "3213349", "Z")  # Graph's own form
@example("2026", "11", "20", ("T", "23", "20", "29"), "123456789", "Z")  # beyond 100 ns
@example("\u0662\u0660\u0662\u0666", "11", "20", ("T", "10", "00", "26"), "5", "Z")  # other decimal digits
@example("2026", "11", "20", ("T", "10", "00", "26"), "\u00b2", "Z")  # a digit that is not decimal
@given(
    st.text(alphabet="0123456789", min_size=4, max_size=4),
    _mostly_in(1, 12),
    _mostly_in(1, 31),
    st.one_of(
        st.none(),
        st.tuples(st.sampled_from("T "), _mostly_in(0, 23), _mostly_in(0, 59), st.one_of(st.none(), _mostly_in(0, 59))),
    ),
    st.one_of(st.none(), st.text(alphabet="0123456789", min_size=1, max_size=9)),
    st.sampled_from(["", "Z", "z", "+01:00", "-0530", "+23:59", " Z", "  "]),
)
def test_agrees_with_the_calendar(year, month, day, clock, fraction, zone):
    # Out-of-range months, days (Feb 30), hours, minutes and seconds included: both must refuse them alike.
    text = f"{year}-{month}-{day}"
    if clock is not None:
        sep, hour, minute, second = clock
        text += f"{sep}{hour}:{minute}"
        if second is not None:
            text += f":{second}" + (f".{fraction}" if fraction else "")
    text += zone
    assert parse_instant(text) == _reference(text)
    assert parse_instant(f" {text} ") == _reference(text)


# ---- the whole range a cursor can hold (issue 12, item 2) ----------------------------------------


@given(st.integers(min_value=MIN_TICKS, max_value=MAX_TICKS))
@example(MIN_TICKS)
@example(MAX_TICKS)
@example(parse_instant("0999-12-31T23:59:59.9999999Z"))  # strftime writes year 999 as "999"
@example(parse_instant("0001-01-01T00:00:00.0000001Z"))
def test_every_instant_of_the_range_formats_and_parses_back(ticks):
    text = format_instant(ticks)
    assert len(text) == len("2026-11-20T10:00:26.9875000Z")
    assert parse_instant(text) == ticks


def test_a_cursor_before_year_1000_is_written_with_four_digits():
    ticks = parse_instant("0999-06-01T12:00:00Z")
    assert ticks is not None
    assert format_instant(ticks) == "0999-06-01T12:00:00.0000000Z"


def test_range_bounds_are_graphs_datetimeoffset_bounds():
    assert format_instant(MIN_TICKS) == "0001-01-01T00:00:00.0000000Z"
    assert format_instant(MAX_TICKS) == "9999-12-31T23:59:59.9999999Z"
    assert in_range(MIN_TICKS) and in_range(MAX_TICKS)
    assert not in_range(MIN_TICKS - 1) and not in_range(MAX_TICKS + 1)


def test_an_instant_past_year_9999_is_refused_with_value_error_not_overflow():
    # "9999-12-31T23:59:59.9999999-14:00" is 14 hours past the last instant UTC can write.
    past = parse_instant("9999-12-31T23:59:59.9999999-14:00")
    assert past is not None and past > MAX_TICKS
    for ticks in (past, MAX_TICKS + 1, MIN_TICKS - 1):
        with pytest.raises(ValueError, match="out of range"):
            format_instant(ticks)
