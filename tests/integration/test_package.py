"""The package of the BUILT add-on (`make build`, then what `make package` does): the same bytes
when packed twice from one build, and no test folders or build lists in it or in the build."""

import hashlib
import tarfile
from pathlib import Path

from tools import make_package

FORBIDDEN_FILES = ("lib/requirements.txt", "lib/exclude.txt")


def test_the_build_holds_no_test_folders_or_build_lists(addon: Path) -> None:
    assert not [name for name in FORBIDDEN_FILES if (addon / name).exists()]
    assert not [str(p.relative_to(addon)) for p in addon.rglob("tests") if p.is_dir()]


def test_packing_one_build_twice_gives_the_same_archive_without_forbidden_paths(addon: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first.tar.gz", tmp_path / "second.tar.gz"
    make_package.pack(addon, first)
    make_package.pack(addon, second)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    with tarfile.open(first) as tar:
        names = tar.getnames()
    inner = ["/".join(n.split("/")[1:]) for n in names]
    assert "bin/defenderlineage.py" in inner and "lib/certifi/cacert.pem" in inner
    assert [n for n in inner if n in FORBIDDEN_FILES] == []
    assert [n for n in inner if "/tests/" in f"/{n}/" or n.endswith((".pyc", ".pyo")) or n.endswith(".built")] == []
