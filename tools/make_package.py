"""Pack output/<app> into dist/<app>-<version>.tar.gz, the file Splunk installs.

Written here rather than with `ucc-gen package` so that the archive is reproducible (sorted
entries, fixed owner) and never carries the build's marker files.
"""

from __future__ import annotations

import sys
import tarfile
from pathlib import Path

SKIP_NAMES = {".built", "__pycache__", ".DS_Store"}


def _filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if any(part in SKIP_NAMES for part in Path(info.name).parts) or info.name.endswith((".pyc", ".pyo")):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "splunk"
    return info


def main(addon: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        tar.add(addon, arcname=addon.name, filter=_filter)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
