"""StoreBatches: the incident store read in batches while a chunk is read (issue 18).

The requests run in the worker thread; here each one waits on a gate the test opens, so what is
ready when is decided by the test, never by timing."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Sequence, Tuple

from defender_lineage_core.incident_store import IncidentCache, StoreUnavailable, Term, docs_from_incident
from defender_lineage_core.store_batches import StoreBatches
from tests.unit.test_incident_store import TENANT, FakeStore, incident

GATE_SECONDS = 10.0  # a gate never opened fails the test instead of hanging it


class GatedStore(FakeStore):
    """A FakeStore whose answers each wait until the test lets one through (``release``)."""

    def __init__(self, docs: Sequence[Dict[str, Any]]) -> None:
        super().__init__(docs)
        self.gate = threading.Semaphore(0)
        self.asked = threading.Semaphore(0)
        self.threads: List[str] = []

    def find(self, terms: Sequence[Term]) -> List[Dict[str, Any]]:
        self.threads.append(threading.current_thread().name)
        self.asked.release()
        if not self.gate.acquire(timeout=GATE_SECONDS):
            raise AssertionError("the test never let this request through")
        return super().find(terms)

    def release(self, requests: int = 1) -> None:
        for _ in range(requests):
            self.gate.release()


def fields(n: int) -> Dict[str, str]:
    """A placed alert of incident ``n`` (what lineage.place gives; request_keys reads these)."""
    return {"tenant_id": TENANT, "incident_id": str(n), "alert_id": f"a{n}"}


def batches_over(count: int, batch_size: int) -> Tuple[GatedStore, IncidentCache, List[BaseException], StoreBatches]:
    """A gated store of ``count`` incidents, its cache, the failures reported, and batches of
    ``batch_size`` keys over them, a chunk started."""
    fake = GatedStore([d for n in range(count) for d in docs_from_incident(incident(str(n)), TENANT)])
    cache = IncidentCache(find=fake.find)
    failures: List[BaseException] = []
    batches = StoreBatches(cache, failures.append, batch_size=batch_size)
    batches.start_chunk()
    return fake, cache, failures, batches


def drain(batches: StoreBatches) -> None:
    """Wait until every batch is fetched (each answer was let through, or the test fails on its gate)."""
    while batches.busy:
        batches.wait()


def test_records_are_ready_only_when_their_batch_is_fetched() -> None:
    fake, cache, failures, batches = batches_over(10, batch_size=2)
    for placed, n in enumerate([0, 0, 1, 2, 3], start=1):  # batches: {0, 1} at record 3, {2, 3} at record 5
        batches.add(fields(n), placed)
    assert fake.asked.acquire(timeout=GATE_SECONDS)  # the first batch's summaries are being asked
    batches.poll()
    assert (batches.finished, batches.written_upto) == (0, 0) and batches.busy
    fake.release(2)  # its summaries, then the alert versions newer than them
    while batches.finished < 3:
        batches.wait()
    assert batches.written_upto == 0  # one finished batch behind
    assert cache.view(TENANT, "1") is not None and cache.view(TENANT, "2") is None
    batches.end_chunk(5)
    fake.release(2)
    drain(batches)
    assert (batches.finished, batches.written_upto) == (5, 3)
    assert cache.view(TENANT, "3") is not None and failures == []
    assert set(fake.threads) == {"incident_store_0"}  # every request in the one worker thread
    assert len(fake.requests) == 4 and cache.requests == 4
    batches.close()


def test_the_last_keys_are_fetched_at_the_chunks_end_and_repeats_ask_nothing() -> None:
    fake, _, failures, batches = batches_over(3, batch_size=50)
    fake.release(100)
    for placed, n in enumerate([0, 1, 1, 2], start=1):
        batches.add(fields(n), placed)
    assert not batches.busy  # three keys: below a batch, nothing asked while the chunk is read
    batches.end_chunk(4)
    drain(batches)
    assert batches.finished == 4 and len(fake.requests) == 2
    batches.start_chunk()  # the next chunk names the same incidents: nothing is asked
    for placed, n in enumerate([2, 1, 0], start=1):
        batches.add(fields(n), placed)
    batches.end_chunk(3)
    drain(batches)
    assert batches.finished == 3 and len(fake.requests) == 2 and failures == []
    batches.close()


def test_a_store_failing_midway_is_reported_once_and_asked_no_more() -> None:
    fake, cache, failures, batches = batches_over(6, batch_size=2)
    for placed, n in enumerate(range(6), start=1):  # three batches of two incidents
        batches.add(fields(n), placed)
    fake.release(2)  # the first batch is answered
    while batches.finished < 2:
        batches.wait()
    fake.fail = ConnectionError("KV store unreachable")
    batches.end_chunk(6)
    fake.release(10)
    drain(batches)
    assert batches.finished == 6  # the records of failed batches are ready (to pass without the store)
    assert len(failures) == 1 and isinstance(failures[0], StoreUnavailable)
    assert not cache.available and "KV store unreachable" in str(cache.failure)
    assert len(fake.requests) == 3  # the failed request; the third batch never asked
    assert cache.view(TENANT, "1") is not None  # what the first batch fetched stays
    batches.close()


def test_a_bug_while_taking_an_answer_in_is_a_failure_not_a_crash() -> None:
    fake, cache, failures, batches = batches_over(2, batch_size=1)
    fake.release(10)

    def broken(docs: Any) -> None:
        raise KeyError("a bug")

    cache.add_docs = broken  # type: ignore[method-assign]
    batches.add(fields(0), 1)
    batches.add(fields(1), 2)
    batches.end_chunk(2)
    drain(batches)
    assert [type(f) for f in failures] == [KeyError] and "KeyError" in str(cache.failure)
    assert batches.finished == 2 and len(fake.requests) == 1
    batches.close()


def test_only_the_time_the_command_waits_is_counted(monkeypatch: Any) -> None:
    # metric.incident_store's seconds: what the command's thread spent blocked in wait(), not the
    # requests' own time (they run beside the placing). A fake clock: one reading before and one
    # after each blocking wait, none for polls.
    import defender_lineage_core.store_batches as module

    readings = iter([10.0, 12.5, 20.0, 20.25])
    monkeypatch.setattr(module.time, "perf_counter", lambda: next(readings))
    fake, _, failures, batches = batches_over(4, batch_size=2)
    batches.poll()  # nothing asked yet: no clock reading
    batches.wait()
    for placed, n in enumerate([0, 1], start=1):
        batches.add(fields(n), placed)
    fake.release()
    batches.wait()  # the summaries: 2.5 s on the fake clock
    fake.release()
    batches.wait()  # the alert versions newer than them: 0.25 s
    assert not batches.busy and batches.waited == 2.75 and failures == []
    batches.close()
