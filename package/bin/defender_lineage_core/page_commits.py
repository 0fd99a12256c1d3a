"""Writing a page's events and committing it (incident-store documents, then the cursor) in order,
with the slow round trips to splunkd off the thread that prepares the next page.

A commit is slow for reasons outside the input (a KV store ``batch_save`` and a checkpoint write,
both round trips to splunkd) while preparing the next page is CPU work; overlapping them is most of
a backfill's speed. :class:`PageCommitter` keeps every guarantee of doing it all inline:

* a page's events go out only once every earlier page's cursor is saved: at any moment at most one
  page has events written and no cursor, so a kill duplicates at most that page;
* a cursor is saved only once the documents of every page it covers are saved, so a kill never
  leaves a cursor past a page whose documents are missing. Documents may be saved *before* their
  page's events are written: they are upserts of the same version, and a page whose events were
  not written is read and saved again from the unchanged cursor;
* documents are saved in page order on one thread, cursors in order on another;
* after a cursor save fails, no later cursor is saved and the error reaches the caller before any
  further event is written.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, Callable, Deque, Generic, List, Optional, TypeVar

Commit = Callable[[], None]
Docs = TypeVar("Docs")


class CommitQueue:
    """One worker thread running commits in order. After a commit fails no later one runs, and
    the error is raised once to the caller (``wait``, ``submit`` or ``close``)."""

    def __init__(self, name: str = "page-commit") -> None:
        self._jobs: Deque[Optional[Commit]] = deque()
        self._cond = threading.Condition()
        self._running = False  # a job is off the deque and not finished yet
        self.failure: Optional[BaseException] = None  # the first commit error; sticky
        self._reported = False  # whether ``failure`` was raised to the caller
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> CommitQueue:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # With an exception already on its way out, do not replace it: ``failure`` keeps the commit's.
        self.close(raise_failure=exc_type is None)

    @property
    def unreported_failure(self) -> Optional[BaseException]:
        """A commit error the caller has not been handed (it was leaving on an error of its own)."""
        return None if self._reported else self.failure

    def submit(self, commit: Commit) -> None:
        """Queue ``commit`` after every commit submitted before it."""
        with self._cond:
            self._raise_failure()
            if self.failure is not None or self._closed:
                raise RuntimeError("commit queue is closed or an earlier commit failed")
            self._jobs.append(commit)
            self._cond.notify_all()

    def wait(self) -> None:
        """Return once every submitted commit has finished; raise the first commit error, once."""
        with self._cond:
            self._idle()
            self._raise_failure()

    def close(self, raise_failure: bool = True) -> None:
        """Finish the queued commits and stop the worker."""
        with self._cond:
            if not self._closed:
                self._idle()
                self._closed = True
                self._jobs.append(None)
                self._cond.notify_all()
        self._thread.join()
        if raise_failure:
            with self._cond:
                self._raise_failure()

    def _idle(self) -> None:
        while self._jobs or self._running:
            self._cond.wait()

    def _raise_failure(self) -> None:
        if self.failure is not None and not self._reported:
            self._reported = True
            raise self.failure

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                job = self._jobs.popleft()
                if job is None:
                    return
                self._running = True
            try:
                job()
            except BaseException as exc:  # handed to the caller's thread, which decides what it means
                with self._cond:
                    self.failure = exc
                    self._jobs.clear()  # later commits build on this one: none of them may run
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()


class PageCommitter(Generic[Docs]):
    """The ordering of the module docstring around three callables: ``write_events(text)`` (the
    caller's thread), ``save_docs(docs)`` (a documents thread; it reports its own failures, the
    incident store being best effort) and ``save_cursor(snapshot)`` (the commit thread).

    ``settle``: ``cursor`` returns once that commit is done. For a run over many tenants, where a page
    holds one of a few page slots until it is committed (page_slots.py): the documents and the save
    requests are page-sized memory too, and other tenants' pages keep the CPU busy meanwhile."""

    def __init__(
        self,
        write_events: Callable[[str], None],
        save_docs: Callable[[Docs], None],
        save_cursor: Callable[[Any], None],
        settle: bool = False,
    ) -> None:
        self._settle = settle
        self._write_events = write_events
        self._save_docs = save_docs
        self._save_cursor = save_cursor
        self._docs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-docs")
        self._commits = CommitQueue()
        self._unsaved: List[Future[None]] = []  # documents of pages written since the last cursor

    def __enter__(self) -> PageCommitter[Docs]:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(raise_failure=exc_type is None)

    @property
    def unreported_failure(self) -> Optional[BaseException]:
        return self._commits.unreported_failure

    def page(self, events: str, docs: Optional[Docs]) -> None:
        """Save ``docs`` (in the background) and write ``events`` once every earlier cursor is saved."""
        saving = self._docs.submit(self._save_docs, docs) if docs else None
        self._commits.wait()
        self._write_events(events)
        if saving is not None:
            self._unsaved.append(saving)

    def cursor(self, snapshot: Any) -> None:
        """Save ``snapshot`` once the documents of every page written before it are saved."""
        savings, self._unsaved = self._unsaved, []
        self._commits.submit(partial(self._commit, savings, snapshot))
        if self._settle:
            self._commits.wait()

    def _commit(self, savings: List[Future[None]], snapshot: Any) -> None:
        for saving in savings:
            saving.result()
        self._save_cursor(snapshot)

    def close(self, raise_failure: bool = True) -> None:
        """Let the pending saves finish, then stop both threads."""
        try:
            self._commits.close(raise_failure=raise_failure)
        finally:
            self._docs.shutdown(wait=True)
