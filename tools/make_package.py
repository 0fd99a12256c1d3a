"""Pack output/<app> into dist/<app>-<version>.tar.gz, the file Splunk installs.

Written here rather than with `ucc-gen package` so that the archive is reproducible byte for byte
from the same build: entries sorted, every mtime fixed (SOURCE_DATE_EPOCH, else 2020-01-01), owner
0/0 named splunk, modes normalised, and a gzip header with mtime 0 and no file name. It never
carries the build's marker files, byte-code caches, test folders or the build's lists of
libraries (`lib/requirements.txt`, `lib/exclude.txt`); tools/postbuild_check.py removes those from
the build too, this is the last line.
"""

from __future__ import annotations

import gzip
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

SKIP_NAMES = {".built", "__pycache__", ".DS_Store", "tests"}
BUILD_LISTS = {"lib/requirements.txt", "lib/exclude.txt"}
DEFAULT_MTIME = 1577836800  # 2020-01-01T00:00:00Z: any fixed instant; 0 upsets some extractors


def excluded(arcname: str) -> bool:
    """True for a path (``<app>/...``) that must not be in the package."""
    parts = PurePosixPath(arcname).parts
    inner = "/".join(parts[1:])
    return any(part in SKIP_NAMES for part in parts) or arcname.endswith((".pyc", ".pyo")) or inner in BUILD_LISTS


def _normalise(info: tarfile.TarInfo, mtime: int) -> tarfile.TarInfo | None:
    if excluded(info.name):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "splunk"
    info.mtime = mtime
    executable = info.isdir() or info.mode & 0o111
    info.mode = 0o755 if executable else 0o644
    return info


def pack(addon: Path, target: Path) -> None:
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", DEFAULT_MTIME))
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        # tarfile.add walks directories in sorted order; the format is fixed so headers do not vary.
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(addon, arcname=addon.name, filter=lambda info: _normalise(info, mtime))


def main(addon: Path, target: Path) -> int:
    pack(addon, target)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
