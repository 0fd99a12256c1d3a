"""The package archive: byte-for-byte the same from the same build, and free of test folders,
byte-code, marker files and the build's lists of libraries."""

import gzip
import hashlib
import os
import tarfile
from pathlib import Path

from tools import make_package

FILES = {
    "bin/input.py": 0o644,
    "bin/run.sh": 0o750,
    "default/app.conf": 0o600,
    "lib/certifi/core.py": 0o644,
    "lib/certifi/tests/test_core.py": 0o644,
    "lib/requirements.txt": 0o644,
    "lib/exclude.txt": 0o644,
    "lib/pkg/sub/tests/data.json": 0o644,
    "bin/__pycache__/input.cpython-39.pyc": 0o644,
    "bin/stray.pyc": 0o644,
    ".built": 0o644,
}


def _addon(tmp_path: Path) -> Path:
    addon = tmp_path / "TA-demo"
    for name, mode in FILES.items():
        path = addon / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
        path.chmod(mode)
    return addon


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_build_same_bytes_whatever_the_files_mtimes(tmp_path: Path) -> None:
    addon = _addon(tmp_path)
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    make_package.pack(addon, first)
    for path in addon.rglob("*"):
        os.utime(path, (1_900_000_000, 1_900_000_000))  # as a copy or a checkout of the same build would
    make_package.pack(addon, second)
    assert _sha(first) == _sha(second)


def test_gzip_header_has_no_time_and_no_file_name(tmp_path: Path) -> None:
    target = tmp_path / "TA-demo.tar.gz"
    make_package.pack(_addon(tmp_path), target)
    header = target.read_bytes()[:10]
    assert header[:3] == b"\x1f\x8b\x08"
    assert header[3] & 0x08 == 0, "FNAME flag set: the file name is in the header"
    assert header[4:8] == b"\0\0\0\0", "gzip mtime is not 0"
    assert gzip.decompress(target.read_bytes())  # still a valid gzip stream


def test_no_tests_bytecode_markers_or_build_lists_and_fixed_metadata(tmp_path: Path) -> None:
    target = tmp_path / "TA-demo.tar.gz"
    make_package.pack(_addon(tmp_path), target)
    with tarfile.open(target) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names, key=lambda n: n.split("/"))  # sorted walk
    files = {m.name for m in members if m.isfile()}
    assert files == {
        "TA-demo/bin/input.py",
        "TA-demo/bin/run.sh",
        "TA-demo/default/app.conf",
        "TA-demo/lib/certifi/core.py",
    }
    assert not [n for n in names if "/tests" in n or n.endswith(".pyc") or "__pycache__" in n]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "splunk", "splunk")
        assert m.mtime == make_package.DEFAULT_MTIME
    modes = {m.name: m.mode for m in members}
    assert modes["TA-demo/bin/run.sh"] == 0o755 and modes["TA-demo/default/app.conf"] == 0o644
    assert modes["TA-demo/bin"] == 0o755
