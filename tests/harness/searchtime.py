"""What Splunk's search-time field extraction makes of an event, for the props.conf we ship.

A deliberately small interpreter: JSON extraction as ``KV_MODE = json`` names fields
(``a.b``, ``list{}``, ``list{}.key``), then ``FIELDALIAS-*`` and the few ``EVAL-*`` functions the
add-on uses, in Splunk's order (KV_MODE, FIELDALIAS, EVAL). It refuses any props key or eval
expression it does not understand, so it can never pass a stanza it did not check.
"""

from __future__ import annotations

import configparser
import json
import re
from pathlib import Path
from typing import Any, Callable, Dict, List

Fields = Dict[str, List[str]]

# Keys that act at index time (or only describe the sourcetype): no effect on search-time fields.
INDEX_TIME_KEYS = {
    "should_linemerge",
    "line_breaker",
    "truncate",
    "max_events",
    "time_prefix",
    "time_format",
    "max_timestamp_lookahead",
    "tz",
    "category",
    "description",
    "sourcetype",
}
_ALIAS = re.compile(r"^\s*(\S+)\s+AS\s+(\S+)\s*$", re.IGNORECASE)
_EVAL_MVDEDUP = re.compile(r"^mvdedup\('([^']+)'\)$")


class UnsupportedProps(ValueError):
    """The interpreter met a construct it does not implement."""


def load_props(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep EVAL-serviceSource's case
    parser.read(path, encoding="utf-8")
    return parser


def json_fields(raw: str) -> Fields:
    """Fields as ``KV_MODE = json`` extracts them (JSON null is skipped, as splunk does)."""
    fields: Fields = {}

    def walk(value: Any, name: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, f"{name}.{key}" if name else key)
        elif isinstance(value, list):
            for inner in value:
                walk(inner, f"{name}{{}}")
        elif value is None:
            return
        else:
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            fields.setdefault(name, []).append(text)

    try:
        walk(json.loads(raw), "")
    except ValueError:
        pass
    return fields


def _mvdedup(source: str) -> Callable[[Fields], List[str]]:
    def evaluate(fields: Fields) -> List[str]:
        seen: List[str] = []
        for value in fields.get(source, []):
            if value not in seen:
                seen.append(value)
        return seen

    return evaluate


def extract(props: configparser.RawConfigParser, sourcetype: str, raw: str) -> Fields:
    """Search-time fields of one event of ``sourcetype``."""
    if not props.has_section(sourcetype):
        raise UnsupportedProps(f"no props stanza [{sourcetype}]")
    options = dict(props.items(sourcetype))
    aliases: List[tuple[str, str]] = []
    evals: List[tuple[str, Callable[[Fields], List[str]]]] = []
    fields: Fields = {}
    for key, value in options.items():
        lower = key.lower()
        if lower in INDEX_TIME_KEYS:
            continue
        if lower == "kv_mode":
            if value.strip() != "json":
                raise UnsupportedProps(f"KV_MODE = {value}")
            fields = json_fields(raw)
        elif lower.startswith("fieldalias-"):
            match = _ALIAS.match(value)
            if not match:
                raise UnsupportedProps(f"{key} = {value}")
            aliases.append((match.group(1), match.group(2)))
        elif lower.startswith("eval-"):
            match = _EVAL_MVDEDUP.match(value.strip())
            if not match:
                raise UnsupportedProps(f"{key} = {value}")
            evals.append((key.split("-", 1)[1], _mvdedup(match.group(1))))
        else:
            raise UnsupportedProps(f"[{sourcetype}] {key}")
    for source, target in aliases:
        if source in fields:
            fields[target] = list(fields[source])
    computed = [(name, evaluate(fields)) for name, evaluate in evals]  # EVALs see the same input
    for name, values in computed:
        if values:
            fields[name] = values
        else:
            fields.pop(name, None)
    return fields
