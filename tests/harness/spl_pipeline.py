"""Runs a shipped search's pipeline over stand-in events, command by command, as Splunk would.

Only the commands and options the add-on's correlation searches use are implemented; anything else
raises :class:`UnsupportedSpl`, so a search this cannot run is never reported as checked. Eval
expressions go through the search-time interpreter (``searchtime.evaluate``), with Splunk's null
and multivalue semantics. Semantics followed (Search Reference):

- the base search (and ``search`` later in the pipeline): ``index=``, ``sourcetype=`` and
  ``field="value"`` terms (``*`` matching any text, case-insensitively) joined by AND / OR, and
  quoted phrases (``"AdvancedHunting-AlertInfo"``): an event matches when its ``_raw`` holds the
  phrase, case-insensitively ("Search terms are case-insensitive"), between breakers (Splunk
  matches whole segments: ``"AlertInfo"`` does not match ``AlertInfoX``);
- ``eval``: assignments left to right, each seeing the ones before it;
- ``where``: keeps a result whose expression is true (null is not true);
- ``mvexpand f``: one result per value of ``f``;
- ``sort 0 [-]f ...``: numbers numerically, else text; a missing value sorts first ascending;
- ``dedup f ...``: the first result of each combination;
- ``streamstats time_window=<n>s values(x) as y ... by ...``: over the results sorted by
  ``_time``, each result sees the results of its group within ``n`` seconds before it, itself
  included (the default ``current=true``);
- ``stats values(x)|values(eval(...))|first(x)|dc(x)|min(x)|max(x) as y ... by ...``: a result
  missing a ``by`` field is dropped; ``values`` are distinct and sorted lexicographically;
  ``min``/``max`` over numbers only;
- ``table`` / ``fields -``: keep / drop fields; ``rename a as "b", ...``;
- ``stats sum(x)``: over numbers only;
- ``defenderlineage``: the core's ``place`` and ``enrich`` over an incident store (a fetcher), as
  the command's ``stream`` does; ``incidents=false``: ``place`` only (no ``incident_*`` fields).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from defender_lineage_core.incident_store import IncidentCache, enrich, request_keys
from defender_lineage_core.lineage import place
from tests.harness.searchtime import (
    NOW_FIELD,
    Value,
    _as_value,
    _number,
    _values,
    evaluate,
    parse_expression,
)

Result = Dict[str, Value]
Fetcher = Callable[[Sequence[str], Sequence[str]], List[Dict[str, Any]]]


class UnsupportedSpl(ValueError):
    """A command or option this runner does not implement."""


class SplSyntaxError(AssertionError):
    """SPL that does not hold together: unbalanced quotes or brackets (and, in the checker of
    tests/unit/test_searches.py, unknown commands, functions or fields)."""


def split_top(text: str, sep: str) -> List[str]:
    """Split on sep outside double quotes, parentheses and brackets; checks they balance."""
    parts, cur, stack, quote, i = [], "", [], False, 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur += ch
            if ch == "\\" and i + 1 < len(text):
                cur += text[i + 1]
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
            cur += ch
        elif ch in "([":
            stack.append(ch)
            cur += ch
        elif ch in ")]":
            if not stack or stack.pop() != {")": "(", "]": "["}[ch]:
                raise SplSyntaxError(f"unbalanced {ch!r} in {text[:80]!r}")
            cur += ch
        elif ch == sep and not stack:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    if quote:
        raise SplSyntaxError(f"unbalanced quote in {text[:80]!r}")
    if stack:
        raise SplSyntaxError(f"unclosed {stack[-1]!r} in {text[:80]!r}")
    return [*parts, cur]


def split_pipeline(search: str) -> List[str]:
    """The commands of a search, split on | outside quotes and brackets."""
    return [part.strip() for part in split_top(search, "|")]


def _assignments(args: str) -> List[Tuple[str, str]]:
    out = split_top(args, ",")
    pairs = []
    for text in out:
        m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*=(?!=)(.+)", text, re.DOTALL)
        if not m:
            raise UnsupportedSpl(f"eval: {text[:60]!r}")
        pairs.append((m.group(1), m.group(2)))
    return pairs


_BASE_TOKEN = re.compile(r'\s*(?:(\w+)=("[^"]*"|[^\s()]+)|"([^"]*)"|(\()|(\))|(OR|AND)\b)')


def base_search_expression(text: str) -> str:
    """A base search of field=value terms, parentheses, OR and AND as an eval expression (adjacent
    terms are ANDed, as in SPL). A quoted phrase matches ``_raw`` (see the module docstring);
    wildcards and unquoted free-text terms are refused."""
    out: List[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _BASE_TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UnsupportedSpl(f"base search term at {text[pos : pos + 40]!r}")
        pos = m.end()
        field, value, phrase, opening, closing, keyword = m.groups()
        operand_start = field is not None or phrase is not None or opening is not None
        if operand_start and out and out[-1] not in ("(", "OR", "AND"):
            out.append("AND")
        if field is not None:
            literal = value.strip('"')
            if "\\" in literal:
                raise UnsupportedSpl("escapes in the base search")
            if "*" in literal:  # "*" matches any text; field values match case-insensitively
                pattern = ".*".join(re.escape(part) for part in literal.split("*"))
                out.append(f'match({field}, "(?i)^{pattern}$")')
            else:
                out.append(f'{field}=="{literal}"')
        elif phrase is not None:
            if "*" in phrase or "\\" in phrase or not phrase:
                raise UnsupportedSpl("wildcards or escapes in a base search phrase")
            out.append(f'match(_raw, "(?i)(?<![A-Za-z0-9_]){re.escape(phrase)}(?![A-Za-z0-9_])")')
        else:
            out.append(opening or closing or keyword)
    _refuse_mixed_precedence(out)
    return " ".join(out)


def _refuse_mixed_precedence(tokens: List[str]) -> None:
    """The search command evaluates OR before AND (Search Reference, "Boolean expressions": "1.
    Expressions within parentheses 2. NOT clauses 3. OR clauses 4. AND clauses"), the opposite of
    eval's precedence this runner evaluates with. A level mixing both is refused: parenthesise."""
    levels: List[set] = [set()]
    for token in tokens:
        if token == "(":
            levels.append(set())
        elif token == ")":
            levels.pop()
        elif token in ("OR", "AND"):
            levels[-1].add(token)
            if len(levels[-1]) == 2:
                raise UnsupportedSpl("OR and AND (or adjacent terms) at one level: Splunk reads OR first")


def _env(result: Result, now: float) -> Dict[str, Value]:
    return {**result, NOW_FIELD: now}


def _sort_key(value: Value) -> Tuple[int, float, str]:
    if value is None:
        return (0, 0.0, "")
    first = value[0] if isinstance(value, list) else value
    number = _number(first)
    return (1, number, "") if number is not None else (2, 0.0, str(first))


class Pipeline:
    def __init__(self, now: float, store: Optional[Fetcher] = None) -> None:
        self.now = now
        self.store = store

    def run(self, search: str, events: Sequence[Result]) -> List[Result]:
        commands = split_pipeline(search)
        results = self.base(commands[0], events)
        for command in commands[1:]:
            name, _, args = command.partition(" ")
            handler = getattr(self, "c_" + name, None)
            if handler is None:
                raise UnsupportedSpl(f"command {name!r}")
            results = handler(args.strip(), results)
        return results

    # -- the base search ------------------------------------------------------------------------
    def base(self, text: str, events: Sequence[Result]) -> List[Result]:
        node = parse_expression(base_search_expression(text))
        return [dict(e) for e in events if evaluate(node, _env(e, self.now)) is True]

    # -- commands -------------------------------------------------------------------------------
    def c_eval(self, args: str, results: List[Result]) -> List[Result]:
        pairs = [(name, parse_expression(expr)) for name, expr in _assignments(args)]
        for result in results:
            for name, node in pairs:
                value = evaluate(node, _env(result, self.now))
                if value is None:
                    result.pop(name, None)
                else:
                    result[name] = value
        return results

    def c_where(self, args: str, results: List[Result]) -> List[Result]:
        node = parse_expression(args)
        return [r for r in results if evaluate(node, _env(r, self.now)) is True]

    def c_mvexpand(self, args: str, results: List[Result]) -> List[Result]:
        field = args.strip()
        out = []
        for r in results:
            for v in _values(r.get(field)):
                out.append({**r, field: v})
        return out

    def c_sort(self, args: str, results: List[Result]) -> List[Result]:
        words = args.split()
        if not words or words[0] != "0":
            raise UnsupportedSpl("sort without 0 (a limit)")
        keys = [(w.lstrip("+-"), w.startswith("-")) for w in words[1:]]
        for field, descending in reversed(keys):
            results = sorted(results, key=lambda r: _sort_key(r.get(field)), reverse=descending)
        return results

    def c_dedup(self, args: str, results: List[Result]) -> List[Result]:
        fields = args.split()
        seen, out = set(), []
        for r in results:
            key = tuple(str(r.get(f)) for f in fields)
            if any(r.get(f) is None for f in fields) or key in seen:
                continue
            seen.add(key)
            out.append(r)
        return out

    def c_fields(self, args: str, results: List[Result]) -> List[Result]:
        if not args.startswith("- "):
            raise UnsupportedSpl("fields other than fields - ...")
        drop = args[2:].split()
        return [{k: v for k, v in r.items() if k not in drop} for r in results]

    def c_table(self, args: str, results: List[Result]) -> List[Result]:
        names = args.split()
        return [{n: r[n] for n in names if n in r} for r in results]

    def _aggregations(self, args: str) -> Tuple[List[Tuple[str, str, str]], List[str]]:
        m = re.search(r"\s+by\s+(.+)$", args, re.DOTALL)
        by = m.group(1).split() if m else []
        body = args[: m.start()] if m else args
        aggs = re.findall(
            r"(\w+)\((eval\((?:[^()]|\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\))*\)|[^()]*)\)\s+as\s+(\w+)", body
        )
        if not aggs:
            raise UnsupportedSpl(f"aggregations {body[:60]!r}")
        return [(fn, arg, alias) for fn, arg, alias in aggs], by

    def _aggregate(self, fn: str, arg: str, group: List[Result]) -> Value:
        if arg.startswith("eval("):
            node = parse_expression(arg[5:-1])
            column = [evaluate(node, _env(r, self.now)) for r in group]
        else:
            column = [r.get(arg) for r in group]
        if fn == "values":
            return _as_value(sorted({v for value in column for v in _values(value)}))
        if fn == "first":
            present = [v for v in column if v is not None]
            return present[0] if present else None
        if fn == "dc":
            return float(len({v for value in column for v in _values(value)}))
        if fn == "sum":
            values = [v for value in column for v in _values(value)]
            numbers = [n for n in (_number(v) for v in values) if n is not None]
            if len(numbers) != len(values):
                raise UnsupportedSpl("sum() over text is not implemented here")
            return sum(numbers) if numbers else None
        if fn in ("min", "max"):
            numbers = [n for value in column for n in (_number(v) for v in _values(value)) if n is not None]
            if len(numbers) != len([v for value in column for v in _values(value)]):
                raise UnsupportedSpl(f"{fn}() over text is not implemented here")
            return (min if fn == "min" else max)(numbers) if numbers else None
        raise UnsupportedSpl(f"aggregation {fn}()")

    def c_search(self, args: str, results: List[Result]) -> List[Result]:
        return self.base(args, results)

    def c_rename(self, args: str, results: List[Result]) -> List[Result]:
        pairs = []
        for part in split_top(args, ","):
            m = re.fullmatch(r'\s*(\w+)\s+as\s+(\w+|"[^"]+")\s*', part)
            if not m:
                raise UnsupportedSpl(f"rename {part[:40]!r}")
            pairs.append((m.group(1), m.group(2).strip('"')))
        out = []
        for r in results:
            row = dict(r)
            for old, new in pairs:
                if old in row:
                    row[new] = row.pop(old)
            out.append(row)
        return out

    def c_stats(self, args: str, results: List[Result]) -> List[Result]:
        aggs, by = self._aggregations(args)
        groups: Dict[Tuple[str, ...], List[Result]] = {}
        for r in results:
            if any(r.get(b) is None or isinstance(r.get(b), list) for b in by):
                continue
            groups.setdefault(tuple(str(r[b]) for b in by), []).append(r)
        out = []
        for key in sorted(groups):
            row: Result = {b: groups[key][0][b] for b in by}
            for fn, arg, alias in aggs:
                value = self._aggregate(fn, arg, groups[key])
                if value is not None:
                    row[alias] = value
            out.append(row)
        return out

    def c_streamstats(self, args: str, results: List[Result]) -> List[Result]:
        m = re.match(r"time_window=(\d+)s\s+(.*)$", args, re.DOTALL)
        if not m:
            raise UnsupportedSpl("streamstats other than time_window=<n>s ...")
        window = float(m.group(1))
        aggs, by = self._aggregations(m.group(2))
        times = [_number(r.get("_time")) for r in results]
        if any(t is None for t in times) or times != sorted(times):  # type: ignore[type-var]
            raise UnsupportedSpl("streamstats time_window needs results sorted by _time")
        out = []
        for i, r in enumerate(results):
            key = tuple(str(r.get(b)) for b in by)
            now_t = times[i]
            assert now_t is not None
            group = [
                results[j]
                for j in range(i + 1)
                if tuple(str(results[j].get(b)) for b in by) == key and now_t - (times[j] or 0.0) <= window
            ]
            row = dict(r)
            for fn, arg, alias in aggs:
                value = self._aggregate(fn, arg, group)
                if value is None:
                    row.pop(alias, None)
                else:
                    row[alias] = value
            out.append(row)
        return out

    def c_defenderlineage(self, args: str, results: List[Result]) -> List[Result]:
        if args not in ("", "incidents=false"):
            raise UnsupportedSpl("defenderlineage options")
        with_store = args == ""
        if with_store and self.store is None:
            raise UnsupportedSpl("defenderlineage without an incident store")
        cache = IncidentCache(self.store) if with_store and self.store is not None else None
        placed = [place(r) for r in results]
        if cache is not None:
            keys = [request_keys(f) for f in placed]
            cache.prefetch({k for k, _a in keys if k}, {a for k, a in keys if not k and a})
        out = []
        for r, fields in zip(results, placed):
            extra = enrich(fields, cache) if cache is not None else {}
            row = dict(r)
            for name, value in {**fields, **extra}.items():
                if value in ("", None, []):
                    row.pop(name, None)
                else:
                    row[name] = value if isinstance(value, (str, list)) else str(value)
            out.append(row)
        return out
