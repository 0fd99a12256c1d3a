from hypothesis import given
from hypothesis import strategies as st

from defender_lineage_core.timestamps import TICKS_PER_SECOND, format_instant, parse_instant


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
