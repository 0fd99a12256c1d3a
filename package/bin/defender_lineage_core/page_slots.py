"""A bound on the pages a run over many tenants holds at once, apart from how many tenants wait at once.

An idle tenant's poll is mostly waiting (a token, then a page request answered with nothing new), so a
run over hundreds of tenants wants many of them waiting on the network together. A backfill page is
the opposite: ~3 MB of body decoded into ~50,000 containers, rendered and written, which is what sets
the run's peak memory. The tenant workers are therefore many (``TENANT_WORKERS``), and a page takes
one of a few slots (``PAGE_SLOTS``) once its body has arrived, for its parsing, writing and commit,
until its collector asks for the next page or stops: a tenant waiting on Graph, on a 429's
Retry-After or on its token holds no slot, so it never delays the others.
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

    @contextmanager
    def held(self) -> Iterator[None]:
        self._free.acquire()
        with self._count_lock:
            self.in_use += 1
            self.peak = max(self.peak, self.in_use)
        try:
            yield
        finally:
            with self._count_lock:
                self.in_use -= 1
            self._free.release()
