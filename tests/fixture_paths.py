"""Where the repository's own test fixtures live (see tests/fixtures/README.md for their sources)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = FIXTURES / "samples"
RECORDINGS = FIXTURES / "recordings"
GRAPH_REFERENCE = FIXTURES / "reference" / "graph-security-api.md"
