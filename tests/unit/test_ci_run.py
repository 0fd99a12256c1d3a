"""`.ci/run` says plainly that Python 3.9 is required (lib/ is built with it), and that a missing
3.13 only skips its runtime tests. `make` is replaced by a stub so that no test suite runs here."""

import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY39 = subprocess.run(
    [str(ROOT / "tools" / "find_python.sh"), "3.9"], capture_output=True, text=True, check=False
).stdout.strip()


def _run_ci(tmp_path: Path, interpreters: "dict[str, str]") -> "tuple[subprocess.CompletedProcess[str], bool]":
    """Run .ci/run with only /usr/bin, /bin and `interpreters` (name -> path) on PATH, no pyenv."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    marker = tmp_path / "make-ran"
    make = fake_bin / "make"
    make.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    make.chmod(make.stat().st_mode | stat.S_IEXEC)
    python3 = fake_bin / "python3"
    python3.symlink_to(sys.executable)
    for name, path in interpreters.items():
        (fake_bin / name).symlink_to(path)
    empty_pyenv = tmp_path / "pyenv"
    empty_pyenv.mkdir()
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "PYENV_ROOT": str(empty_pyenv), "HOME": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return result, marker.exists()


def test_missing_python39_stops_before_make_test_and_says_why(tmp_path: Path) -> None:
    result, make_ran = _run_ci(tmp_path, {})
    assert result.returncode != 0
    assert not make_ran
    assert "Python 3.9 NOT FOUND" in result.stderr
    assert "required" in result.stderr and "lib/ is built with it" in result.stderr
    assert "SKIPPED" not in result.stdout + result.stderr


def test_missing_python313_only_skips_its_runtime_tests(tmp_path: Path) -> None:
    assert PY39, "Python 3.9 is required on the build machines (tools/find_python.sh 3.9)"
    result, make_ran = _run_ci(tmp_path, {"python3.9": PY39})
    assert result.returncode == 0, result.stderr
    assert make_ran
    assert "Python 3.9: " in result.stdout
    assert "Python 3.13 NOT FOUND: the runtime tests for 3.13 will be SKIPPED" in result.stdout
