"""Test-only stand-in for ``splunk.clilib.bundle_paths``."""

from __future__ import annotations

import os
from typing import Sequence


def make_splunkhome_path(parts: Sequence[str]) -> str:
    """``$SPLUNK_HOME/<parts...>``; KeyError when SPLUNK_HOME is unset, ValueError when ``parts``
    would escape it (as Splunk's own implementation)."""
    base = os.path.normpath(os.environ["SPLUNK_HOME"])
    relpath = os.path.normpath(os.path.join(*parts)) if parts else ""
    fullpath = os.path.normpath(os.path.join(base, relpath))
    if os.path.relpath(fullpath, base).startswith(".."):
        raise ValueError(f"Illegal escape from parent directory {base!r}: {fullpath!r}")
    return fullpath
