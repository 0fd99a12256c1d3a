"""The malloc settings of an input's process, on each interpreter Splunk ships: measured, not assumed.

A subprocess from the built add-on's bin/ runs twenty times what a backfill page asks of malloc
(a ~4 MB body joined from 10 KB reads, its text, a thousand ~4 KB item texts, the page's XML and its
bytes) and counts its minor page faults, once as Python starts and once after
``keep_freed_memory()``. The settings exist to remove those faults. (The items' dicts are left out:
CPython's own small-object allocator serves them, and no malloc setting changes its faults.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import json, resource, sys
import import_declare_test
from defender_lineage_core.process_tuning import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else None

body = json.dumps({"value": [{"id": "a%d" % i, "description": "d" * 4000} for i in range(1000)]}).encode()
chunks = [body[i : i + 10240] for i in range(0, len(body), 10240)]

def page():
    text = b"".join(chunks).decode()
    step = len(text) // 1000
    texts = [text[i : i + step] for i in range(0, step * 1000, step)]
    return len("".join(['<event unbroken="1"><data>%s</data><done /></event>' % t for t in texts]).encode())

page()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    page()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _faults(addon: Path, python: str, mode: str, tmp_path: Path) -> dict:
    probe = tmp_path / "tuning_probe.py"
    probe.write_text(PROBE)
    run = subprocess.run(
        [python, str(probe), mode],
        cwd=addon / "bin",
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(addon / "bin"), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result: dict = json.loads(run.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.skipif(not _glibc(), reason="*** not a glibc system: the malloc settings apply to glibc only ***")
def test_keeping_freed_memory_removes_the_page_faults_of_a_page_shaped_workload(
    addon: Path, python: str, tmp_path: Path
):
    default = _faults(addon, python, "default", tmp_path)
    tuned = _faults(addon, python, "tuned", tmp_path)
    assert tuned["applied"] is True
    # Measured on glibc 2.3x, both interpreters: ~40,000 faults by default, ~1,000 tuned.
    assert default["faults"] > 5_000
    assert tuned["faults"] * 10 < default["faults"]
