"""Cyclic garbage collector settings for the inputs' processes.

A backfill page decodes into ~50,000 containers (the items' dicts and lists) that are acyclic and
freed by reference counting as soon as the page is written. CPython's default gen-0 threshold
(700) still runs the cyclic collector dozens of times a page, each time walking what the imports
left behind (splunklib, solnlib, requests): measured at ~15% of a backfill's CPU. Freezing the
import-time heap and collecting after 50,000 net allocations keeps that near zero, while cyclic
garbage (exceptions with tracebacks, some HTTP objects) is still collected within a page or so.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100


def before_imports() -> None:
    """First thing in an input's helper module: the imports after it (~100,000 objects) then run
    without the ~60 collections the default threshold gives them (~7 ms of every run's start)."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


def tune_for_bulk_parsing() -> None:
    """Call once, after the imports, in a process that parses large Graph pages."""
    # No gc.collect() first: after the imports it found ~10 unreachable objects and took ~6 ms a run.
    gc.freeze()  # objects alive now (modules, classes, constants) are never walked again
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
