"""A bound on the pages a run over many tenants holds at once, apart from how many tenants wait at once.

An idle tenant's poll is mostly waiting (a token, then a page request answered with nothing new), so a
run over hundreds of tenants wants many of them waiting on the network together. A backfill page is
the opposite: ~3 MB of body decoded into ~50,000 containers, rendered and written, which is what sets
the run's peak memory. The tenant workers are therefore many (``TENANT_WORKERS``), and a page takes
one of a few slots (``PAGE_SLOTS``) once Graph's 200 answer has its headers here, before its body is
read (a backfill body is ~3 MB: bodies waiting for a slot would be the memory the bound is for), and
keeps it while it is parsed, written and committed (the committer settles each page in such a run:
page_commits.py), until its collector asks for the next page or stops; the page's lists are emptied
before the slot is given back. A tenant waiting on Graph's answer, on a 429's Retry-After or on its
token holds no slot, so it never delays the others beyond the few pages being written.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class PageSlots:
    """At most ``limit`` pages held at once; ``held`` counts them (``in_use``, ``peak``)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._free = threading.BoundedSemaphore(self.limit)
        self._count_lock = threading.Lock()
        self.in_use = 0
        self.peak = 0

    def acquire(self) -> None:
        self._free.acquire()
        with self._count_lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)

    def release(self) -> None:
        """Any thread may give a slot back (a prefetched page's slot is taken on the prefetch thread)."""
        with self._count_lock:
            self.in_use -= 1
        self._free.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()
