"""Refuse a build whose add-on is not pure Python or carries build leftovers.

Splunk Cloud and this project require lib/ to hold no compiled code, and packages must not ship
byte-code caches, the build's own marker files and lists, or the libraries' test suites.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

COMPILED = {".so", ".pyd", ".dll", ".dylib", ".pyc", ".pyo", ".exe"}


def main(addon: Path) -> int:
    # pip leaves console scripts in lib/bin; nothing in the add-on runs them.
    scripts = addon / "lib" / "bin"
    if scripts.is_dir():
        shutil.rmtree(scripts)
    for cache in list(addon.rglob("__pycache__")):
        shutil.rmtree(cache)
    # ucc-gen copies package/lib/'s build lists next to the libraries, and pip installs the test
    # suites some libraries carry (certifi/tests): neither is part of the add-on.
    for build_list in ("requirements.txt", "exclude.txt"):
        (addon / "lib" / build_list).unlink(missing_ok=True)
    for tests in [p for p in (addon / "lib").rglob("tests") if p.is_dir()]:
        shutil.rmtree(tests, ignore_errors=True)
    bad = sorted(str(p.relative_to(addon)) for p in addon.rglob("*") if p.suffix in COMPILED)
    if bad:
        print("compiled files in the add-on (lib/ must stay pure Python):", *bad, sep="\n  ")
        return 1
    for required in ("bin/defenderlineage.py", "default/commands.conf", "default/props.conf"):
        if not (addon / required).is_file():
            print(f"missing from the build: {required}")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
