"""Where the add-on's Python processes keep their bytecode when a harness starts them.

splunkd's Python writes ``__pycache__`` beside an installed app's sources, so every run after the
first starts from bytecode. The harness runs the add-on from ``output/``, which is packaged and
must stay free of bytecode: the same warm start is had by keeping the bytecode under one cache
directory outside it (PYTHONPYCACHEPREFIX; each interpreter version has its own file names).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict


def bytecode_env() -> Dict[str, str]:
    """Environment for a child interpreter: bytecode cached outside the app's directory."""
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return {"PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / f"tadl-pycache-{uid}")}
