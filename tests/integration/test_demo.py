"""`make demo` (tools/demo.py on the BUILT add-on): the three inputs, the three layers, 120 columns,
and run_summary log lines shown whole (wrapped between fields, never cut inside one)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.harness.pipeline import ROOT

FIELD = re.compile(r"^\w+=\S*$")


def _demo(addon: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "demo.py"), "--addon", str(addon), "--python", python],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _log_blocks(lines: list[str]) -> list[list[str]]:
    """Each printed run_summary line as its tokens, continuation lines (indented 11+) joined back."""
    blocks: list[list[str]] = []
    in_block = False
    for line in lines:
        if line.startswith("      log: "):
            blocks.append(line.split("log: ", 1)[1].split())
            in_block = True
        elif in_block and line.startswith(" " * 11) and line.strip():
            blocks[-1].extend(line.split())
        else:
            in_block = False
    return blocks


def test_demo_runs_three_inputs_shows_three_layers_within_120_columns(addon: Path, python: str) -> None:
    result = _demo(addon, python)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    too_wide = [line for line in lines if len(line) > 120]
    assert too_wide == [], f"{len(too_wide)} lines wider than 120 columns, e.g. {too_wide[0]!r}"
    for input_type, sourcetype in (
        ("defender_alerts", "ms:defender:graph:alert"),
        ("defender_incidents", "ms:defender:graph:incident"),
        ("defender_hunting", "ms:defender:graph:hunting"),
    ):
        assert any(line.startswith(f"[2/4] {input_type}://demo wrote") and sourcetype in line for line in lines)
    layers = next(line for line in lines if line.strip().startswith("layers: "))
    assert layers.strip().startswith("layers: detection, hunting, incident;")
    assert "Demo OK" in result.stdout

    blocks = _log_blocks(lines)
    assert len(blocks) == 3, blocks
    for tokens in blocks:
        assert tokens[0] == "run_summary"
        cut = [t for t in tokens[1:] if not FIELD.match(t)]
        assert cut == [], f"fields cut or elided: {cut}"
        keys = [t.split("=", 1)[0] for t in tokens[1:]]
        assert keys[0] == "input" and keys[-1] == "lag_seconds", keys  # whole: first to last field
