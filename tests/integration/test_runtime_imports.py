"""Everything in the built add-on's bin/ imports on each interpreter Splunk ships (3.9, 3.13).

Run in a subprocess as splunkd would: from a copy of the add-on laid out as
$SPLUNK_HOME/etc/apps/TA-defender-lineage (splunktaucclib's REST handlers find their app name in
that path), cwd bin/, the generated import_declare_test putting lib/ on sys.path, and only the
splunk stand-in package on PYTHONPATH. Also proves lib/ is pure Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.harness.pipeline import ROOT

STUB = ROOT / "tests" / "harness" / "splunk_stub"
PROBE = r"""
import importlib, json, pathlib, sys
import import_declare_test
names = sorted(p.stem for p in pathlib.Path(".").glob("*.py") if p.stem != "zz_import_probe")
for package in ("defender_lineage_core", "defender_lineage_splunk"):
    names += sorted(package + "." + p.stem for p in pathlib.Path(package).glob("*.py"))
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"version": list(sys.version_info[:2]), "imported": len(names), "failed": failed}))
"""


def test_every_module_imports(addon: Path, python: str, tmp_path: Path):
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(STUB),
        "SPLUNK_HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    installed = tmp_path / "etc" / "apps" / addon.name
    shutil.copytree(addon, installed)
    probe = installed / "bin" / "zz_import_probe.py"
    probe.write_text(PROBE)
    run = subprocess.run(
        [python, str(probe)], cwd=installed / "bin", env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}
    assert report["imported"] >= 15


def test_lib_is_pure_python(addon: Path):
    compiled = [p for p in (addon / "lib").rglob("*") if p.suffix in {".so", ".pyd", ".dll", ".dylib", ".pyc"}]
    assert compiled == []
