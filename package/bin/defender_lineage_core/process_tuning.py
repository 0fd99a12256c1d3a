"""Garbage collector and memory allocator settings for the inputs' processes.

Each input run is a process of its own that splunkd starts, that pages through Graph and exits;
nothing else runs in it. Two defaults of the runtime cost a backfill dearly there:

Cyclic garbage collector. A backfill page decodes into ~50,000 containers (the items' dicts and
lists) that are acyclic and freed by reference counting as soon as the page is written. CPython's
default gen-0 threshold (700) still runs the cyclic collector dozens of times a page, each time
walking what the imports left behind (splunklib, solnlib, requests): measured at ~15% of a
backfill's CPU. Freezing the import-time heap and collecting after 50,000 net allocations keeps
that near zero, while cyclic garbage (exceptions with tracebacks, some HTTP objects) is still
collected within a page or so.

glibc malloc. A page allocates and frees ~15 MB in buffers of a few KB to a few MB (the body, its
text, each item's text, the page's XML). glibc hands the memory back to the kernel as soon as the
top of its heap is more than 128 KB free, and serves buffers above a moving threshold with their own
mmap, so the next page faults the same memory in again, one zeroed 4 KB page at a time. Page faults
were ~14% of a backfill's CPU, in the kernel (perf, ~44,000 for 10,000 alerts); keeping freed memory
for the process's short life removes 12,000 to 15,000 of them (``odata.parse_collection`` removes
many of the others, CPython's own). The cost is bounded by what the run had in use at its
peak (memory is kept, not added) and ends when the run's process exits; `make bench` shows the peak
RSS of a 100,000-alert backfill within a few percent of a 10,000-alert one.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import Any, Callable, Optional

GEN0_THRESHOLD = 50_000
GEN1_THRESHOLD = 20
GEN2_THRESHOLD = 100

# mallopt(3) parameters (glibc's malloc.h) and what the inputs set them to.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MALLOC_SETTINGS = (
    # Buffers up to 16 MB (a page's body and XML are ~3 MB) come from the heap, not their own mmap;
    # setting it also stops glibc from moving the two thresholds by itself.
    (M_MMAP_THRESHOLD, 16 << 20),
    # Free memory at the top of the heap is handed back only beyond 64 MB.
    (M_TRIM_THRESHOLD, 64 << 20),
    # The heap grows 16 MB at a time (address space; the kernel backs it only when touched).
    (M_TOP_PAD, 16 << 20),
)


def before_imports() -> None:
    """First thing in an input's helper module: the imports after it (~100,000 objects) then run
    without the ~60 collections the default threshold gives them (~7 ms of every run's start)."""
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)


def tune_for_bulk_parsing() -> bool:
    """Call once, after the imports, in a process that parses large Graph pages (an input's own
    process, never splunkd's or a search's). True when glibc took the malloc settings."""
    # No gc.collect() first: after the imports it found ~10 unreachable objects and took ~6 ms a run.
    gc.freeze()  # objects alive now (modules, classes, constants) are never walked again
    gc.set_threshold(GEN0_THRESHOLD, GEN1_THRESHOLD, GEN2_THRESHOLD)
    return keep_freed_memory()


def _glibc() -> Optional[Any]:
    """The process's C library when it is glibc (Splunk's Python on Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):  # "glibc 2.35"; musl and others have no answer
            return None
        import ctypes

        return ctypes.CDLL(None)  # the symbols already loaded in this process: glibc's malloc
    except (AttributeError, ValueError, OSError):
        return None


# Heaps ("arenas") glibc may give the threads of a run over many tenants (its default is 8 per core).
TENANT_RUN_HEAPS = 2


def share_heaps_between_threads(load_libc: Callable[[], Optional[Any]] = _glibc) -> bool:
    """Call before a run over many tenants starts its workers: at most ``TENANT_RUN_HEAPS`` glibc heaps.

    Every thread gets a heap of its own until there are 8 per core, and with the trimming above turned
    off each heap keeps its high-water mark until the process exits. A run over many tenants starts
    threads for every tenant (prefetch, commit queues, HTTP exchanges), so over the run page-sized work
    lands in ever more heaps: the peak RSS of a backfill of 1,000 alerts per tenant went from ~220 MB at
    10 tenants to ~280 MB at 300 (2 cores; the cap grows with the cores). With two heaps it stayed at
    ~195 to ~205 MB, what the workers hold at once. Python allocates under the GIL, so the threads seldom
    wait for a heap. Not for a single-tenant run: sharing heaps there cost ~7 MB of its ~70 MB peak.
    True when glibc took the setting; elsewhere nothing changes."""
    try:
        libc = load_libc()
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        return mallopt is not None and mallopt(M_ARENA_MAX, TENANT_RUN_HEAPS) == 1
    except Exception:  # an exotic C library must not stop collection
        return False


def keep_freed_memory(load_libc: Callable[[], Optional[Any]] = _glibc) -> bool:
    """Apply MALLOC_SETTINGS where the C library is glibc; best effort, never raises.

    True when every setting was accepted. Elsewhere (Windows, macOS, musl) nothing changes and the
    input runs as before, only with more page faults.
    """
    try:
        libc = load_libc()
        mallopt = getattr(libc, "mallopt", None) if libc is not None else None
        if mallopt is None:
            return False
        accepted = [mallopt(parameter, value) == 1 for parameter, value in MALLOC_SETTINGS]
    except Exception:  # an exotic C library must not stop collection
        return False
    return all(accepted)
