"""The incident store's reads for one chunk, in batches fetched while the chunk is still read.

Plain Python (``defenderlineage`` is the only user). The command places each record as it reads
it, and gives its incident (or, for a hunting row, alert) key here with the number of records
placed so far (:meth:`StoreBatches.add`). Every ``batch_size`` keys the search has not asked for
make a batch; batches are fetched one after another (:meth:`IncidentCache.steps`: the summaries,
then the alert versions newer than them, follow-ups only for merge chains), each request in a
worker thread, so the wait for splunkd overlaps the reading. The answers are taken into the cache
by the command's own thread (:meth:`poll`, :meth:`wait`): the worker only waits for splunkd and
decodes its JSON, and no lock is needed.

A batch is *finished* when its last request is answered (or the store failed): from then on the
records placed before its keys were gathered (:attr:`finished`) have everything the cache will
have for them. The command writes records up to :attr:`written_upto` while it reads, one finished
batch behind, so that at the chunk's end it still has records to write while the last batch is
fetched.
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, List, Mapping, Optional, Set, Tuple

from defender_lineage_core.incident_store import IncidentCache, Request, Steps, request_keys

# New keys (incidents and hunting rows' alerts) a chunk collects before they are fetched while the
# chunk is still being read: far below max_rows_per_query (50,000) even from a store written before
# summaries listed their alerts (~6 documents per incident), and a chunk of 1,000 events (at most
# 1,000 keys) one batch.
BATCH_SIZE = 2000


class StoreBatches:
    """One search's batched reads of the incident store (see the module docstring).

    ``on_failure`` is called once per failure, with the exception, in the command's thread; the
    cache is then unavailable and later batches finish without asking.
    """

    def __init__(
        self,
        cache: IncidentCache,
        on_failure: Callable[[BaseException], None],
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self.cache = cache
        self.on_failure = on_failure
        self.batch_size = max(1, batch_size)
        self._worker: Optional[ThreadPoolExecutor] = None
        self._asked: Tuple[Set[str], Set[str]] = (set(), set())  # this chunk's incident and alert keys
        # (tenant_id, incident_id) as placed, of those keys: a record naming one again needs no add()
        self.seen: Set[Tuple[Any, Any]] = set()
        self._new: Tuple[List[str], List[str]] = ([], [])  # keys not in a batch yet
        self._pending: Deque[Tuple[List[str], List[str], int]] = deque()  # batches not started
        self._active: Optional[Tuple[Steps, Future, int]] = None  # (its steps, its request, its records)
        self.waited = 0.0  # seconds the command's thread waited for an answer (the rest overlapped its work)
        self.finished = 0  # records whose batches are all fetched
        self.written_upto = 0  # one finished batch behind (what to write while reading)

    # -- one chunk --------------------------------------------------------------------------------

    def start_chunk(self) -> None:
        """Forget the last chunk's keys and record counts (records are counted per chunk)."""
        self._asked = (set(), set())
        self.seen = set()
        self._new = ([], [])
        self.finished = self.written_upto = 0

    def add(self, fields: Mapping[str, Any], placed: int) -> None:
        """The store keys of a placed record (``lineage.place`` output), the ``placed``-th of the chunk."""
        pair = (fields.get("tenant_id"), fields.get("incident_id"))
        if pair[1] and pair in self.seen:  # another event of an incident this chunk named already
            return
        ikey, akey = request_keys(fields)
        if ikey:
            self.seen.add(pair)
        if ikey:
            if ikey in self._asked[0]:
                return
            self._asked[0].add(ikey)
            self._new[0].append(ikey)
        elif akey and akey not in self._asked[1]:
            self._asked[1].add(akey)
            self._new[1].append(akey)
        else:
            return
        if len(self._new[0]) + len(self._new[1]) >= self.batch_size:
            self._pending.append((*self._new, placed))
            self._new = ([], [])
            self.poll()

    def end_chunk(self, placed: int) -> None:
        """The chunk is read: its last keys make the last batch."""
        if self._new[0] or self._new[1]:
            self._pending.append((*self._new, placed))
            self._new = ([], [])
        self.poll()

    @property
    def busy(self) -> bool:
        """A batch is being fetched or waits to be."""
        return self._active is not None or bool(self._pending)

    # -- moving on --------------------------------------------------------------------------------

    def poll(self) -> None:
        """Take in every answer that has arrived and start what comes next; never waits."""
        while True:
            if self._active is not None:
                if not self._active[1].done():
                    return
                self._take()
            elif not self._start():
                return

    def wait(self) -> None:
        """Wait for the request being fetched, then :meth:`poll`; the time waited adds to :attr:`waited`."""
        if self._active is not None:
            started = time.perf_counter()
            self._active[1].exception()  # waits; the exception (if any) is taken in by poll
            self.waited += time.perf_counter() - started
        self.poll()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False)
            self._worker = None

    def _start(self) -> bool:
        """Start the next batch; False when none waits."""
        if not self._pending:
            return False
        incidents, alerts, upto = self._pending.popleft()
        steps = self.cache.steps(incidents, alerts)  # nothing when the store already failed
        request = next(steps, None)
        if request is None:
            self._finish(upto)
        else:
            self._active = (steps, self._submit(request), upto)
        return True

    def _take(self) -> None:
        assert self._active is not None
        steps, future, upto = self._active
        self._active = None
        error = future.exception()
        try:
            request = self.cache.answer(steps, error if error is not None else future.result())
        except Exception as failure:  # StoreUnavailable, or a bug while taking the answer in
            if not self.cache.failure:
                self.cache.failure = f"{type(failure).__name__}: {failure}"[:300]
            self.on_failure(failure)
            request = None
        if request is None:
            self._finish(upto)
        else:
            self._active = (steps, self._submit(request), upto)

    def _finish(self, upto: int) -> None:
        if upto > self.finished:
            self.written_upto, self.finished = self.finished, upto

    def _submit(self, request: Request) -> Future:
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="incident_store")
        return self._worker.submit(request)
