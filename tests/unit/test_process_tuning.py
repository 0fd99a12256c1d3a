"""process_tuning: the collector and malloc settings of an input's own process."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any, Iterator, List, Tuple

import pytest

from defender_lineage_core import process_tuning
from defender_lineage_core.process_tuning import MALLOC_SETTINGS, keep_freed_memory


class FakeLibc:
    def __init__(self, answers: Tuple[int, ...] = (1, 1, 1)) -> None:
        self.calls: List[Tuple[int, int]] = []
        self._answers = list(answers)

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self._answers[len(self.calls) - 1]


def test_every_setting_is_given_to_mallopt_in_order():
    libc = FakeLibc()
    assert keep_freed_memory(lambda: libc) is True
    assert libc.calls == list(MALLOC_SETTINGS)
    assert [parameter for parameter, _ in libc.calls] == [
        process_tuning.M_MMAP_THRESHOLD,
        process_tuning.M_TRIM_THRESHOLD,
        process_tuning.M_TOP_PAD,
    ]


def test_a_refused_setting_is_reported_and_the_others_are_still_tried():
    libc = FakeLibc(answers=(1, 0, 1))
    assert keep_freed_memory(lambda: libc) is False
    assert len(libc.calls) == len(MALLOC_SETTINGS)


class NoMallopt:
    pass


def _raises() -> Any:
    raise OSError("dlopen failed")


class BrokenLibc:
    def mallopt(self, parameter: int, value: int) -> int:
        raise RuntimeError("exotic C library")


@pytest.mark.parametrize(
    "load_libc",
    [lambda: None, NoMallopt, _raises, BrokenLibc],
    ids=["not-glibc", "no-mallopt", "loader-fails", "mallopt-raises"],
)
def test_without_glibc_nothing_changes_and_nothing_raises(load_libc: Any):
    assert keep_freed_memory(load_libc) is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is looked for on Linux only")
def test_glibc_is_found_on_this_linux_machine():
    try:
        glibc = bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        glibc = False
    libc = process_tuning._glibc()
    assert (libc is not None and hasattr(libc, "mallopt")) is glibc


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_for_bulk_parsing_freezes_the_heap_raises_the_threshold_and_keeps_memory(
    restore_gc: None, monkeypatch: pytest.MonkeyPatch
):
    asked: List[bool] = []
    monkeypatch.setattr(process_tuning, "keep_freed_memory", lambda: asked.append(True) or True)
    gc.set_threshold(700, 10, 10)
    assert process_tuning.tune_for_bulk_parsing() is True
    assert gc.get_threshold() == (
        process_tuning.GEN0_THRESHOLD,
        process_tuning.GEN1_THRESHOLD,
        process_tuning.GEN2_THRESHOLD,
    )
    assert gc.get_freeze_count() > 0
    assert asked == [True]


def test_before_imports_raises_the_threshold_only(restore_gc: None):
    gc.set_threshold(700, 10, 10)
    before = gc.get_freeze_count()
    process_tuning.before_imports()
    assert gc.get_threshold()[0] == process_tuning.GEN0_THRESHOLD
    assert gc.get_freeze_count() == before


ARENAS_PROBE = r"""
import ctypes, os, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
from defender_lineage_core.process_tuning import share_heaps_between_threads, tune_for_bulk_parsing
assert tune_for_bulk_parsing() and share_heaps_between_threads()
held, ready = [], threading.Barrier(13)
def work():
    held.append(bytearray(1 << 20))  # a page-sized buffer from this thread's arena
    ready.wait()
    ready.wait()
threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads:
    t.start()
ready.wait()  # every thread has allocated and is still alive
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
ready.wait()
for t in threads:
    t.join()
print(open(path).read().count("<heap nr="))
os.unlink(path)
"""


@pytest.mark.skipif(not (sys.platform.startswith("linux") and process_tuning._glibc()), reason="glibc only")
def test_threads_of_many_tenants_share_two_heaps(tmp_path: Any):
    """Twelve threads allocating at once (a run's tenants, prefetches and commits) use at most two glibc
    arenas, each keeping its high-water mark: peak RSS is bounded by what is in use at once, not by how
    many threads the run went through (glibc's default allows 8 arenas per core)."""
    import subprocess

    bin_dir = os.path.join(os.path.dirname(process_tuning.__file__), os.pardir)
    out = subprocess.run(
        [sys.executable, "-c", ARENAS_PROBE, os.path.abspath(bin_dir)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert 1 <= int(out.stdout.strip()) <= 2


def test_sharing_heaps_is_one_mallopt_and_never_raises():
    libc = FakeLibc((1,))
    assert process_tuning.share_heaps_between_threads(lambda: libc) is True
    assert libc.calls == [(process_tuning.M_ARENA_MAX, process_tuning.TENANT_RUN_HEAPS)]
    assert process_tuning.share_heaps_between_threads(lambda: None) is False
