"""PageCommitter keeps the guarantees of writing and committing each page inline (page_commits.py)."""

from __future__ import annotations

import threading
import time
from typing import Any, List, Tuple

import pytest

from defender_lineage_core.page_commits import CommitQueue, PageCommitter


class Journal:
    """What happened, in order, from every thread: (what, page)."""

    def __init__(self, docs_delay: float = 0.0, cursor_delay: float = 0.0) -> None:
        self.entries: List[Tuple[str, int]] = []
        self.lock = threading.Lock()
        self.docs_delay = docs_delay
        self.cursor_delay = cursor_delay
        self.fail_cursor_at: int = -1
        self.fail_docs_at: int = -1

    def note(self, what: str, page: int) -> None:
        with self.lock:
            self.entries.append((what, page))

    def write(self, text: str) -> None:
        self.note("events", int(text))

    def save_docs(self, docs: List[int]) -> None:
        page = docs[0]
        self.note("docs_start", page)
        time.sleep(self.docs_delay)
        if page == self.fail_docs_at:
            raise RuntimeError(f"docs of page {page} failed")
        self.note("docs_done", page)

    def save_cursor(self, page: int) -> None:
        self.note("cursor_start", page)
        time.sleep(self.cursor_delay)
        if page == self.fail_cursor_at:
            raise OSError(f"cursor of page {page} failed")
        self.note("cursor_done", page)

    def at(self, what: str, page: int) -> int:
        return self.entries.index((what, page))


def run_pages(journal: Journal, pages: int) -> PageCommitter:
    committer: PageCommitter = PageCommitter(journal.write, journal.save_docs, journal.save_cursor)
    with committer:
        for page in range(pages):
            committer.page(str(page), [page])
            committer.cursor(page)
    return committer


@pytest.mark.parametrize("docs_delay,cursor_delay", [(0.0, 0.0), (0.02, 0.0), (0.0, 0.02), (0.01, 0.01)])
def test_events_wait_for_every_earlier_cursor_and_cursors_for_their_documents(docs_delay, cursor_delay):
    journal = Journal(docs_delay, cursor_delay)
    run_pages(journal, 8)
    for page in range(8):
        # A cursor never passes a page whose documents are not saved yet.
        assert journal.at("docs_done", page) < journal.at("cursor_start", page)
        if page:
            # At most one page has events out and no cursor: page N's events follow cursor N-1.
            assert journal.at("cursor_done", page - 1) < journal.at("events", page)
    assert [p for what, p in journal.entries if what == "docs_start"] == list(range(8))
    assert [p for what, p in journal.entries if what == "cursor_done"] == list(range(8))
    assert [p for what, p in journal.entries if what == "events"] == list(range(8))


def test_documents_are_saved_while_the_caller_prepares_the_next_page():
    # The point of the committer: a slow save does not hold the caller up until it must.
    journal = Journal(docs_delay=0.2)
    committer: PageCommitter = PageCommitter(journal.write, journal.save_docs, journal.save_cursor)
    with committer:
        started = time.monotonic()
        committer.page("0", [0])
        committer.cursor(0)
        handed_over = time.monotonic() - started
    assert handed_over < 0.1
    assert ("cursor_done", 0) in journal.entries


def test_a_failed_cursor_stops_everything_after_it_and_reaches_the_caller_before_more_events():
    journal = Journal()
    journal.fail_cursor_at = 2
    committer: PageCommitter = PageCommitter(journal.write, journal.save_docs, journal.save_cursor)
    with pytest.raises(OSError, match="cursor of page 2 failed"):
        with committer:
            for page in range(6):
                committer.page(str(page), [page])
                committer.cursor(page)
    assert ("events", 3) not in journal.entries  # nothing written once the cursor could not be kept
    assert not any(what.startswith("cursor") and page > 2 for what, page in journal.entries)
    assert committer.unreported_failure is None  # it was raised


def test_a_failed_document_save_keeps_its_cursor_back():
    # save_docs is meant to report its own (best-effort) failures; anything it lets escape is fatal.
    journal = Journal()
    journal.fail_docs_at = 1
    with pytest.raises(RuntimeError, match="docs of page 1 failed"):
        run_pages(journal, 4)
    assert ("cursor_done", 0) in journal.entries
    assert ("cursor_start", 1) not in journal.entries
    assert ("events", 2) not in journal.entries


def test_an_error_of_the_caller_is_not_replaced_by_a_commit_error():
    journal = Journal(cursor_delay=0.05)
    journal.fail_cursor_at = 0
    committer: PageCommitter = PageCommitter(journal.write, journal.save_docs, journal.save_cursor)
    with pytest.raises(ValueError, match="caller"):
        with committer:
            committer.page("0", [0])
            committer.cursor(0)
            raise ValueError("caller's own error")
    failure = committer.unreported_failure
    assert isinstance(failure, OSError) and "page 0" in str(failure)


def test_pending_commits_finish_before_close_returns():
    journal = Journal(docs_delay=0.05, cursor_delay=0.05)
    run_pages(journal, 3)
    assert journal.entries[-1] == ("cursor_done", 2)


def test_a_page_without_documents_still_orders_its_cursor():
    journal = Journal()
    committer: PageCommitter = PageCommitter(journal.write, journal.save_docs, journal.save_cursor)
    with committer:
        committer.page("0", [])
        committer.cursor(0)
        committer.cursor(1)  # a page whose versions were all written before: a cursor only
        committer.page("2", [2])
        committer.cursor(2)
    assert [e for e in journal.entries if e[0] in ("events", "cursor_done")] == [
        ("events", 0),
        ("cursor_done", 0),
        ("cursor_done", 1),
        ("events", 2),
        ("cursor_done", 2),
    ]


def test_commit_queue_refuses_work_after_a_failure():
    queue = CommitQueue()

    def boom() -> None:
        raise OSError("boom")

    queue.submit(boom)
    with pytest.raises(OSError):
        queue.wait()
    with pytest.raises(RuntimeError):
        queue.submit(lambda: None)
    queue.close()  # already reported: closes quietly


def test_commits_queued_behind_a_failed_one_never_run():
    queue = CommitQueue()
    release = threading.Event()
    ran: List[str] = []

    def first() -> None:
        release.wait(5)
        raise OSError("first failed")

    queue.submit(first)
    queue.submit(lambda: ran.append("second"))  # queued while the first still runs
    release.set()
    with pytest.raises(OSError, match="first failed"):
        queue.wait()
    queue.close()
    assert ran == []


def test_a_settling_committer_returns_from_cursor_once_it_is_saved():
    """Over many tenants a page keeps its slot until committed (page_slots.py): ``cursor`` waits for
    the documents and the cursor save instead of leaving them in flight."""
    gate = threading.Event()
    saved: List[Any] = []

    def save_docs(docs: Any) -> None:
        gate.wait(5)

    committer: PageCommitter[List[str]] = PageCommitter(lambda text: None, save_docs, saved.append, settle=True)
    with committer:
        committer.page("events", ["doc"])
        threading.Timer(0.05, gate.set).start()
        committer.cursor({"cursor": 1})
        assert saved == [{"cursor": 1}], "cursor() returned before its commit was done"
