"""Text layout for `make demo`: every line fits a 120-column terminal, nothing is cut mid-field.

Tables too wide for the terminal are split into several tables that repeat the key column;
multivalue cells become wrapped value lists; log lines and lineage paths wrap at field or path
boundaries onto indented continuation lines instead of being truncated.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

WIDTH = 120
ELLIPSIS = "..."


def clip(value: str, width: int) -> str:
    """A cell value that fits ``width``, marked when shortened (only for single tokens wider than a table)."""
    return value if len(value) <= width else value[: max(0, width - len(ELLIPSIS))] + ELLIPSIS


def wrap_tokens(tokens: Sequence[str], width: int = WIDTH, indent: str = "", joiner: str = " ") -> List[str]:
    """Greedy fill of whole tokens into lines of at most ``width``; continuation lines get ``indent``.

    A token is never split: one that cannot fit even on a line of its own is left out and counted in
    a final ``(+N elided)`` marker, so what is shown is always whole fields.
    """
    lines: List[str] = []
    current = ""
    elided = 0
    for token in tokens:
        if current and len(current) + len(joiner) + len(token) <= width:
            current += joiner + token
            continue
        if current:
            lines.append(current)
            current = ""
        lead = indent if lines else ""
        if len(lead) + len(token) > width:
            elided += 1
            continue
        current = lead + token
    if current:
        lines.append(current)
    if elided:
        marker = f"(+{elided} elided)"
        if lines and len(lines[-1]) + 1 + len(marker) <= width:
            lines[-1] += " " + marker
        else:
            lines.append(indent + marker)
    return lines


def wrap_fields(line: str, width: int = WIDTH, indent: str = "") -> List[str]:
    """A ``key=value key=value`` log line, whole, broken only between fields."""
    return wrap_tokens(line.split(), width, indent)


def wrap_path(path: str, width: int = WIDTH, indent: str = "") -> List[str]:
    """A lineage_path broken only before its `` > `` and `` | `` separators, never inside a level."""
    return wrap_tokens(re.split(r" (?=[>|] )", path), width, indent)


def table(
    rows: Sequence[Dict[str, List[str]]],
    columns: Sequence[str],
    width: int = WIDTH,
    cell_width: int = 44,
    keys: int = 1,
) -> str:
    """A Splunk-style results table, multivalue cells stacked one value per line.

    When the columns do not fit ``width`` the table is split into several, each repeating the first
    ``keys`` (key) columns, so no line wraps in the terminal.
    """
    cells = [[[clip(v, cell_width) for v in row.get(c, [])] or [""] for c in columns] for row in rows]
    widths = [max([len(c)] + [len(v) for r in cells for v in r[i]]) for i, c in enumerate(columns)]
    key_idx = list(range(min(keys, len(columns))))
    groups: List[List[int]] = []
    for i in range(len(key_idx), len(columns)):
        if groups and sum(widths[j] + 2 for j in [*key_idx, *groups[-1], i]) - 2 <= width:
            groups[-1].append(i)
        else:
            groups.append([i])
    out: List[str] = []
    for group in groups or [[]]:
        idx = [*key_idx, *group]
        out.append("  ".join(columns[i].ljust(widths[i]) for i in idx).rstrip())
        out.append("  ".join("-" * widths[i] for i in idx))
        for r in cells:
            for n in range(max(len(r[i]) for i in idx)):
                out.append("  ".join((r[i][n] if n < len(r[i]) else "").ljust(widths[i]) for i in idx).rstrip())
        out.append("")
    return "\n".join(out)


def values_blocks(
    rows: Sequence[Dict[str, List[str]]], by: Sequence[str], fields: Sequence[str], width: int = WIDTH
) -> str:
    """``stats values(...) by ...`` results, one block per group: the group's keys, then each field's
    values as a wrapped, comma-separated list with their count (Splunk's multivalue cells, laid out
    for a terminal rather than as columns hundreds of characters wide)."""
    label = max(len(f) for f in fields)
    out: List[str] = []
    for row in rows:
        out.append("  ".join(f"{b}={(row.get(b) or [''])[0]}" for b in by))
        for f in fields:
            values = row.get(f, [])
            head = f"  {f.ljust(label)}  ({len(values)}) "
            tokens = [v + "," for v in values[:-1]] + values[-1:] if values else ["-"]
            lines = wrap_tokens(tokens, width - len(head), "")
            out.append(head + lines[0])
            out.extend(" " * len(head) + line for line in lines[1:])
        out.append("")
    return "\n".join(out)
