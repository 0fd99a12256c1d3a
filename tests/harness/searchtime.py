"""What Splunk's search-time field extraction makes of an event, for the props.conf we ship.

A deliberately small interpreter, in Splunk's search-time order: ``REPORT-*`` (regex transforms
from transforms.conf with ``FORMAT = <field>::$<n>`` and ``MV_ADD``), ``KV_MODE = json``
(naming fields ``a.b``, ``list{}``, ``list{}.key``, JSON null skipped), ``FIELDALIAS-*``, then the
``EVAL-*`` calculated fields, all evaluated on the same input (a calculated field never sees
another one, as in Splunk), then the automatic ``LOOKUP-*`` lookups (KV store lookups only, their
rows given by the test; each reads the fields as the calculated fields left them).

It is as strict as Splunk where Splunk's specs set a rule (each rule cites its spec line below):

- search-time ``FORMAT`` cannot concatenate (a value is one capturing group or a literal);
- ``REPORT`` regexes run in real PCRE2 (the ``pcre2`` bindings) at the transform's
  ``MATCH_LIMIT`` / ``DEPTH_LIMIT`` (defaults 100000 / 1000); a match that exceeds them ends the
  extraction for that event, keeping only the values found before it;
- ``KV_MODE = json`` extracts only from the first ``extraction_cutoff`` (5000) bytes of an event;
  explicit paths (``spath(x, path)``, ``json_extract``) read the whole event;
- ``json_extract`` paths are paths: a key holding a period is split at it (``json_extract_exact``
  reads a literal key).
- ``LOOKUP-*`` follows props.conf.spec's grammar and semantics (cited at ``LookupStanza``): lookups
  run after extractions, aliases and calculated fields, and nothing before them sees their output.

Eval expressions are parsed in full (the parser is shared with the SPL checks of the shipped
searches), but only the functions the add-on's props.conf uses are *evaluated*, with Splunk's
semantics for null and multivalue arguments. Anything else (a props key, a transforms key, a
function, a multivalue argument to a function whose multivalue behaviour is not implemented here)
raises :class:`UnsupportedProps`, so this interpreter can never pass a stanza it did not check.
"""

from __future__ import annotations

import configparser
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import pcre2

Fields = Dict[str, List[str]]
# An eval value: null (None), a single value (str, float, bool), or a multivalue (list of str, 2+).
Value = Union[None, str, float, bool, List[str]]

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
_ALIAS_PAIR = re.compile(r"\s*([^\s\"']+)\s+AS\s+([^\s\"']+)", re.IGNORECASE)
_FORMAT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)::(.*)$", re.DOTALL)

# limits.conf.spec [spath] (Splunk 10.4.2): "extraction_cutoff = <integer> * For 'extract-all' spath
# extraction mode, this setting applies extraction only to the first <integer> number of bytes.
# This setting applies both the auto kv extraction and the spath command [...] Default: 5000".
JSON_EXTRACTION_CUTOFF = 5000
# transforms.conf.spec (Splunk 9.0.3 to 10.4.2), MATCH_LIMIT: "Use this to set an upper bound on how
# many times PCRE calls an internal function, match(). [...] Default: 100000"; DEPTH_LIMIT: "Use
# this to limit the depth of nested backtracking in an internal PCRE function, match(). If set too
# low, PCRE might fail to correctly match a pattern. Default: 1000". limits.conf [rex] match_limit
# / depth_limit carry the same defaults for the rex command.
DEFAULT_MATCH_LIMIT = 100000
DEFAULT_DEPTH_LIMIT = 1000


class UnsupportedProps(ValueError):
    """The interpreter met a construct it does not implement."""


class EvalSyntaxError(ValueError):
    """An eval expression that does not parse."""


class SplunkRuleViolation(UnsupportedProps):
    """A configuration that Splunk's own specs say does not work the way it is written."""


class ConfFile(configparser.RawConfigParser):
    """A parsed .conf file that knows its directory (REPORT-* names stanzas of transforms.conf next to it)."""

    conf_dir: Optional[Path] = None


def load_props(path: Path) -> ConfFile:
    parser = ConfFile(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep EVAL-serviceSource's case
    parser.read(path, encoding="utf-8")
    parser.conf_dir = Path(path).parent
    return parser


def load_transforms(path: Path) -> ConfFile:
    return load_props(path)


def json_fields(raw: str, cutoff: Optional[int] = JSON_EXTRACTION_CUTOFF) -> Fields:
    """Fields as ``KV_MODE = json`` extracts them (JSON null is skipped, as splunk does).

    Only the first ``cutoff`` bytes (UTF-8) of the event are read (limits.conf [spath]
    extraction_cutoff, cited above): a value that is not complete before the cut is not extracted,
    nor is anything after it. ``cutoff=None`` reads the whole event (explicit-path extraction).
    """
    fields: Fields = {}
    text = raw
    if cutoff is not None:
        text = raw.encode("utf-8")[:cutoff].decode("utf-8", "ignore")
    try:
        for name, value in _json_scalars(text):
            fields.setdefault(name, []).append(value)
    except _Truncated:
        pass
    return fields


# KV_MODE = auto (props.conf.spec: "auto: extracts field/value pairs separated by equal signs"), the
# subset the add-on's own log lines need (ta:defender:lineage:log, solnlib's format): a name of
# letters, digits and "_", "=", then a double-quoted value (quotes removed; it ends at the next
# quote) or the text up to the next whitespace. A line whose values hold other punctuation than
# these lines use is beyond what this models; the tests feed it lines the built inputs wrote.
_AUTO_KV = re.compile(r'(?<![\w.])([A-Za-z_]\w*)=(?:"([^"]*)"|([^\s"]+))')


def auto_kv_pairs(raw: str) -> List[Tuple[str, str]]:
    return [(m.group(1), m.group(2) if m.group(2) is not None else m.group(3)) for m in _AUTO_KV.finditer(raw)]


class _Truncated(Exception):
    """The text ended (or stopped being JSON) inside a value."""


_JSON_WS = " \t\r\n"
_JSON_SCALAR = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null')


def _json_scalars(text: str) -> Iterator[Tuple[str, str]]:
    """(field name, value) for each complete scalar of the JSON text, in order; stops at the cut."""
    pos = 0

    def skip() -> None:
        nonlocal pos
        while pos < len(text) and text[pos] in _JSON_WS:
            pos += 1

    def value(name: str) -> Iterator[Tuple[str, str]]:
        nonlocal pos
        skip()
        if pos >= len(text):
            raise _Truncated
        ch = text[pos]
        if ch == "{":
            pos += 1
            skip()
            if pos < len(text) and text[pos] == "}":
                pos += 1
                return
            while True:
                skip()
                m = _JSON_SCALAR.match(text, pos)
                if not m or not m.group(0).startswith('"'):
                    raise _Truncated
                key = json.loads(m.group(0))
                pos = m.end()
                skip()
                if pos >= len(text) or text[pos] != ":":
                    raise _Truncated
                pos += 1
                yield from value(f"{name}.{key}" if name else key)
                skip()
                if pos >= len(text):
                    raise _Truncated
                if text[pos] == "}":
                    pos += 1
                    return
                if text[pos] != ",":
                    raise _Truncated
                pos += 1
        elif ch == "[":
            pos += 1
            skip()
            if pos < len(text) and text[pos] == "]":
                pos += 1
                return
            while True:
                yield from value(f"{name}{{}}")
                skip()
                if pos >= len(text):
                    raise _Truncated
                if text[pos] == "]":
                    pos += 1
                    return
                if text[pos] != ",":
                    raise _Truncated
                pos += 1
        else:
            m = _JSON_SCALAR.match(text, pos)
            # A number that touches the cut may itself be cut (12|34): not complete, not extracted.
            if not m or (m.end() == len(text) and not m.group(0).startswith('"')):
                raise _Truncated
            pos = m.end()
            parsed = json.loads(m.group(0))
            if parsed is None:
                return
            if isinstance(parsed, bool):
                yield name, "true" if parsed else "false"
            elif isinstance(parsed, str):
                yield name, parsed
            else:
                yield name, m.group(0) if isinstance(parsed, float) else str(parsed)

    yield from value("")


# ------------------------------------------------------------------------------------------ eval
# Splunk eval functions (name -> (min args, max args or None)), for checking expressions in
# shipped searches. Only a subset is evaluated (see _FUNCTIONS below).
EVAL_FUNCTIONS: Dict[str, Tuple[int, Optional[int]]] = {
    "abs": (1, 1),
    "case": (2, None),
    "ceiling": (1, 1),
    "cidrmatch": (2, 2),
    "coalesce": (1, None),
    "floor": (1, 1),
    "if": (3, 3),
    "in": (2, None),
    "isnotnull": (1, 1),
    "isnull": (1, 1),
    "isnum": (1, 1),
    "isstr": (1, 1),
    "json_array_to_mv": (1, 2),
    "json_extract": (1, None),
    "json_extract_exact": (1, None),
    "json_object": (0, None),
    "len": (1, 1),
    "like": (2, 2),
    "lower": (1, 1),
    "ltrim": (1, 2),
    "match": (2, 2),
    "max": (1, None),
    "min": (1, None),
    "mvappend": (1, None),
    "mvcount": (1, 1),
    "mvdedup": (1, 1),
    "mvfilter": (1, 1),
    "mvfind": (2, 2),
    "mvindex": (2, 3),
    "mvjoin": (2, 2),
    "mvmap": (2, 2),
    "mvsort": (1, 1),
    "mvzip": (2, 3),
    "now": (0, 0),
    "null": (0, 0),
    "nullif": (2, 2),
    "printf": (1, None),
    "relative_time": (2, 2),
    "replace": (3, 3),
    "round": (1, 2),
    "rtrim": (1, 2),
    "spath": (2, 2),
    "split": (2, 2),
    "strftime": (2, 2),
    "strptime": (2, 2),
    "substr": (2, 3),
    "time": (0, 0),
    "tonumber": (1, 2),
    "tostring": (1, 2),
    "trim": (1, 2),
    "true": (0, 0),
    "typeof": (1, 1),
    "upper": (1, 1),
    "urldecode": (1, 1),
    "validate": (2, None),
}


@dataclass(frozen=True)
class Node:
    kind: str  # num, str, field, call, bin, not, neg
    value: Any = None
    args: Tuple[Node, ...] = field(default_factory=tuple)


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<qfield>'[^']*')
  | (?P<num>\d+(?:\.\d+)?)
  | (?P<op>==|!=|<=|>=|[=<>+\-*/%.(),])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"AND", "OR", "NOT", "XOR", "LIKE"}


def _unescape(body: str) -> str:
    # Splunk eval strings: \" is a quote and \\ a backslash; any other backslash stays as written
    # (so regexes such as "\d+" or "\[" reach match() unchanged).
    return re.sub(r"\\([\"\\])", r"\1", body)


def _tokens(text: str) -> List[Tuple[str, str]]:
    out: List[Tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise EvalSyntaxError(f"cannot read eval expression at {text[pos : pos + 30]!r}")
        kind = m.lastgroup or ""
        tok = m.group(kind)
        if kind == "ident" and tok.upper() in _KEYWORDS and tok.isupper():
            kind = "kw"
        out.append((kind, tok))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> Tuple[str, str]:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else ("end", "")

    def take(self, kind: str, value: Optional[str] = None) -> str:
        k, v = self.peek()
        if k != kind or (value is not None and v != value):
            raise EvalSyntaxError(f"expected {value or kind}, found {v or 'end of expression'!r}")
        self.i += 1
        return v

    def at(self, kind: str, value: str) -> bool:
        return self.peek() == (kind, value)

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "end":
            raise EvalSyntaxError(f"unexpected {self.peek()[1]!r}")
        return node

    def expr(self) -> Node:
        node = self.and_()
        while self.at("kw", "OR") or self.at("kw", "XOR"):
            op = self.take("kw")
            node = Node("bin", op, (node, self.and_()))
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.at("kw", "AND"):
            self.take("kw")
            node = Node("bin", "AND", (node, self.not_()))
        return node

    def not_(self) -> Node:
        if self.at("kw", "NOT"):
            self.take("kw")
            return Node("not", None, (self.not_(),))
        return self.cmp()

    def cmp(self) -> Node:
        node = self.add()
        k, v = self.peek()
        if (k == "op" and v in ("==", "=", "!=", "<", ">", "<=", ">=")) or (k, v) == ("kw", "LIKE"):
            self.i += 1
            node = Node("bin", "==" if v == "=" else v, (node, self.add()))
        return node

    def add(self) -> Node:
        node = self.mul()
        while self.peek()[0] == "op" and self.peek()[1] in ("+", "-", "."):
            op = self.take("op")
            node = Node("bin", op, (node, self.mul()))
        return node

    def mul(self) -> Node:
        node = self.unary()
        while self.peek()[0] == "op" and self.peek()[1] in ("*", "/", "%"):
            op = self.take("op")
            node = Node("bin", op, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            self.take("op")
            return Node("neg", None, (self.unary(),))
        return self.primary()

    def primary(self) -> Node:
        k, v = self.peek()
        if k == "num":
            self.i += 1
            return Node("num", float(v))
        if k == "str":
            self.i += 1
            return Node("str", _unescape(v[1:-1]))
        if k == "qfield":
            self.i += 1
            return Node("field", v[1:-1])
        if k == "op" and v == "(":
            self.take("op", "(")
            node = self.expr()
            self.take("op", ")")
            return node
        if k == "ident":
            self.i += 1
            if self.at("op", "("):
                self.take("op", "(")
                args: List[Node] = []
                if not self.at("op", ")"):
                    args.append(self.expr())
                    while self.at("op", ","):
                        self.take("op", ",")
                        args.append(self.expr())
                self.take("op", ")")
                name = v.lower()
                if name not in EVAL_FUNCTIONS:
                    raise EvalSyntaxError(f"unknown eval function {v}()")
                low, high = EVAL_FUNCTIONS[name]
                if len(args) < low or (high is not None and len(args) > high):
                    raise EvalSyntaxError(f"{v}() takes {low}..{high if high is not None else 'n'} arguments")
                if name in ("mvmap",) and args[0].kind != "field":
                    raise EvalSyntaxError("mvmap()'s first argument must be a field")
                return Node("call", name, tuple(args))
            return Node("field", v)
        raise EvalSyntaxError(f"unexpected {v or 'end of expression'!r}")


def parse_expression(text: str) -> Node:
    """Parse one eval expression (raises EvalSyntaxError)."""
    return _Parser(text).parse()


def referenced_fields(node: Node) -> List[str]:
    """Field names an expression reads (for mvmap, the iterated field counts once)."""
    out: List[str] = []

    def walk(n: Node) -> None:
        if n.kind == "field" and n.value not in out:
            out.append(n.value)
        for a in n.args:
            walk(a)

    walk(node)
    return out


# ---- evaluation (only what props.conf uses) ---------------------------------------------------
Env = Dict[str, Value]


def _as_value(values: Optional[List[str]]) -> Value:
    if not values:
        return None
    return values[0] if len(values) == 1 else list(values)


def _values(v: Value) -> List[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return list(v)
    return [_text(v)]


def _text(v: Value) -> str:
    if isinstance(v, bool):
        raise UnsupportedProps("a boolean used as a value")
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else repr(v)
    if isinstance(v, list):
        raise UnsupportedProps("a multivalue where a single value is needed")
    return str(v)


def _single(v: Value, what: str) -> Value:
    if isinstance(v, list):
        raise UnsupportedProps(f"multivalue argument to {what}() is not implemented here")
    return v


def _truth(v: Value) -> bool:
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    raise UnsupportedProps("a non-boolean used as a condition")


def _number(v: Value) -> Optional[float]:
    v = _single(v, "comparison")
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, float):
        return v
    try:
        return float(_text(v))
    except ValueError:
        return None


# Splunk's JSON functions (Search Reference, "JSON functions", help.splunk.com .../9.4/evaluation-
# functions/json-functions): json_extract "Returns either a JSON array or a Splunk software native
# type value from a field and zero or more paths"; json_extract_exact "Returns Splunk software
# native type values from a piece of JSON by matching literal strings in the event and extracting
# them as keys". So in json_extract a period is a path separator: json_extract(x, "@odata.type")
# looks for key "type" inside key "@odata" (null for Graph evidence), and json_extract_exact(x,
# "@odata.type") reads the key as written.
_PATH_KEY = re.compile(r"[A-Za-z_@][A-Za-z0-9_@]*")


def _json_path(doc: Any, path: str) -> Any:
    keys = path.split(".")
    if not all(_PATH_KEY.fullmatch(k) for k in keys):
        raise UnsupportedProps(f"json_extract path {path!r} (only plain key paths are implemented)")
    for key in keys:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _native(out: Any) -> Value:
    """A JSON value as Splunk's JSON functions return it: objects and arrays as JSON text."""
    if out is None:
        return None
    if isinstance(out, (dict, list)):
        return json.dumps(out, separators=(",", ":"), ensure_ascii=False)
    if isinstance(out, bool):
        return "true" if out else "false"
    return str(out)


def _load_json(v: Value) -> Any:
    try:
        return json.loads(_text(v))
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()


def _json_extract(v: Value, path: Value) -> Value:
    v = _single(v, "json_extract")
    path_text = _text(_single(path, "json_extract"))
    _json_path({}, path_text)  # refuses paths it does not implement, whatever the input
    if v is None:
        return None
    doc = _load_json(v)
    return None if doc is _NOT_JSON else _native(_json_path(doc, path_text))


def _json_extract_exact(v: Value, key: Value) -> Value:
    v = _single(v, "json_extract_exact")
    key_text = _text(_single(key, "json_extract_exact"))
    if v is None:
        return None
    doc = _load_json(v)
    if not isinstance(doc, dict):
        return None
    return _native(doc.get(key_text))


# The spath eval function with an explicit path: "spath(<value>, <path>)" (Search Reference,
# "Text functions"): dotted keys and "{}" for every element of an array; several results make a
# multivalue. An explicit path is not "extract-all" mode, so limits.conf's extraction_cutoff does
# not cut it (see JSON_EXTRACTION_CUTOFF). Indexed ({1}) and attribute paths are not implemented.
_SPATH_STEP = re.compile(r"([A-Za-z_@][A-Za-z0-9_@]*)(\{\})?")


def _spath(v: Value, path: Value) -> Value:
    v = _single(v, "spath")
    steps = _text(_single(path, "spath")).split(".")
    parsed = [_SPATH_STEP.fullmatch(step) for step in steps]
    if not all(parsed):
        raise UnsupportedProps(f"spath path {path!r} (only keys and {{}} are implemented)")
    if v is None:
        return None
    doc = _load_json(v)
    if doc is _NOT_JSON:
        return None
    current: List[Any] = [doc]
    for m in parsed:
        assert m is not None
        nxt: List[Any] = []
        for node in current:
            if isinstance(node, dict) and m.group(1) in node:
                inner = node[m.group(1)]
                if m.group(2):
                    nxt.extend(inner if isinstance(inner, list) else [])
                else:
                    nxt.append(inner)
        current = nxt
    values = [_native(x) for x in current if x is not None]
    return _as_value([x for x in values if isinstance(x, str)])


def _compare(op: str, a: Value, b: Value) -> Value:
    a, b = _single(a, "comparison"), _single(b, "comparison")
    if a is None or b is None:
        return None
    if op == "LIKE":
        pattern = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in _text(b))
        return re.fullmatch(pattern, _text(a), re.DOTALL) is not None
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        x: Any = na
        y: Any = nb
    elif op in ("==", "!="):
        x, y = _text(a), _text(b)
    else:
        raise UnsupportedProps(f"{op} on non-numbers is not implemented here")
    return {"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]


def evaluate(node: Node, env: Env) -> Value:
    """Value of an expression over one event's fields (Splunk semantics for the subset used)."""
    if node.kind == "num":
        return float(node.value)
    if node.kind == "str":
        return str(node.value)
    if node.kind == "field":
        return env.get(node.value)
    if node.kind == "neg":
        inner_n = _number(evaluate(node.args[0], env))
        return None if inner_n is None else -inner_n
    if node.kind == "not":
        inner = evaluate(node.args[0], env)
        return None if inner is None else not _truth(inner)
    if node.kind == "bin":
        op = node.value
        if op in ("AND", "OR"):
            left = _truth(evaluate(node.args[0], env))
            if op == "AND":
                return left and _truth(evaluate(node.args[1], env))
            return left or _truth(evaluate(node.args[1], env))
        if op in ("==", "!=", "<", ">", "<=", ">=", "LIKE"):
            return _compare(op, evaluate(node.args[0], env), evaluate(node.args[1], env))
        if op in ("+", "-", "*", "/", "%"):
            a, b = _number(evaluate(node.args[0], env)), _number(evaluate(node.args[1], env))
            if a is None or b is None:
                return None  # arithmetic on null (or on text, which "+" would join: not implemented) is null
            if op in ("/", "%") and b == 0:
                return None
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0, "%": a % b if b else 0.0}[op]
        if op == ".":  # string concatenation; a null operand makes the result null, as in Splunk
            left_v = _single(evaluate(node.args[0], env), "concatenation")
            right_v = _single(evaluate(node.args[1], env), "concatenation")
            return None if left_v is None or right_v is None else _text(left_v) + _text(right_v)
        raise UnsupportedProps(f"operator {op}")
    if node.kind == "call":
        fn = _FUNCTIONS.get(node.value)
        if fn is None:
            raise UnsupportedProps(f"eval function {node.value}() is not implemented here")
        return fn(node.args, env)
    raise UnsupportedProps(f"eval construct {node.kind}")


def _f_coalesce(args: Sequence[Node], env: Env) -> Value:
    for a in args:
        v = evaluate(a, env)
        if v is not None:
            return v
    return None


def _f_if(args: Sequence[Node], env: Env) -> Value:
    return evaluate(args[1] if _truth(evaluate(args[0], env)) else args[2], env)


def _f_case(args: Sequence[Node], env: Env) -> Value:
    if len(args) % 2:
        raise UnsupportedProps("case() with an odd number of arguments")
    for i in range(0, len(args), 2):
        if _truth(evaluate(args[i], env)):
            return evaluate(args[i + 1], env)
    return None


def _f_lower(args: Sequence[Node], env: Env) -> Value:
    v = _single(evaluate(args[0], env), "lower")
    return None if v is None else _text(v).lower()


def _f_mvdedup(args: Sequence[Node], env: Env) -> Value:
    seen: List[str] = []
    for v in _values(evaluate(args[0], env)):
        if v not in seen:
            seen.append(v)
    return _as_value(seen)


def _f_mvappend(args: Sequence[Node], env: Env) -> Value:
    out: List[str] = []
    for a in args:
        out.extend(_values(evaluate(a, env)))
    return _as_value(out)


def _f_mvmap(args: Sequence[Node], env: Env) -> Value:
    name = args[0].value
    out: List[str] = []
    for v in _values(env.get(name)):
        result = evaluate(args[1], {**env, name: v})
        out.extend(_values(result))  # a null result adds nothing
    return _as_value(out)


def _f_mvfilter(args: Sequence[Node], env: Env) -> Value:
    names = referenced_fields(args[0])
    if len(names) != 1:
        raise UnsupportedProps("mvfilter() must reference exactly one field")
    name = names[0]
    kept = [v for v in _values(env.get(name)) if _truth(evaluate(args[0], {**env, name: v}))]
    return _as_value(kept)


def _f_json_extract(args: Sequence[Node], env: Env) -> Value:
    if len(args) != 2:
        raise UnsupportedProps("json_extract() with other than one path")
    return _json_extract(evaluate(args[0], env), evaluate(args[1], env))


def _f_json_extract_exact(args: Sequence[Node], env: Env) -> Value:
    if len(args) != 2:
        raise UnsupportedProps("json_extract_exact() with other than one key")
    return _json_extract_exact(evaluate(args[0], env), evaluate(args[1], env))


def _f_spath(args: Sequence[Node], env: Env) -> Value:
    return _spath(evaluate(args[0], env), evaluate(args[1], env))


def _f_match(args: Sequence[Node], env: Env) -> Value:
    subject = _single(evaluate(args[0], env), "match")
    pattern = _single(evaluate(args[1], env), "match")
    if subject is None or pattern is None:
        return None
    return re.search(_text(pattern), _text(subject)) is not None


def _f_nullif(args: Sequence[Node], env: Env) -> Value:
    a = _single(evaluate(args[0], env), "nullif")
    b = _single(evaluate(args[1], env), "nullif")
    return None if a is not None and b is not None and _text(a) == _text(b) else a


def _f_isnull(args: Sequence[Node], env: Env) -> Value:
    return evaluate(args[0], env) is None


def _f_isnotnull(args: Sequence[Node], env: Env) -> Value:
    return evaluate(args[0], env) is not None


def _f_tonumber(args: Sequence[Node], env: Env) -> Value:
    if len(args) != 1:
        raise UnsupportedProps("tonumber() with a base")
    return _number(evaluate(args[0], env))


def _f_upper(args: Sequence[Node], env: Env) -> Value:
    v = _single(evaluate(args[0], env), "upper")
    return None if v is None else _text(v).upper()


def _f_substr(args: Sequence[Node], env: Env) -> Value:
    # substr(X, Y, Z): 1-based start Y, length Z (Search Reference, text functions).
    v = _single(evaluate(args[0], env), "substr")
    start = _number(evaluate(args[1], env))
    length = _number(evaluate(args[2], env)) if len(args) == 3 else None
    if v is None or start is None or start < 1:
        if start is not None and start < 1:
            raise UnsupportedProps("substr() with a start below 1 is not implemented here")
        return None
    text = _text(v)[int(start) - 1 :]
    return text if length is None else text[: int(length)]


_STRPTIME_FORMATS = {"%Y-%m-%dT%H:%M:%S%z"}


def _f_strptime(args: Sequence[Node], env: Env) -> Value:
    import datetime

    v = _single(evaluate(args[0], env), "strptime")
    fmt = _text(_single(evaluate(args[1], env), "strptime"))
    if fmt not in _STRPTIME_FORMATS:
        raise UnsupportedProps(f"strptime() format {fmt!r} is not implemented here")
    if v is None:
        return None
    try:
        return datetime.datetime.strptime(_text(v), fmt).timestamp()
    except ValueError:
        return None


# now(): the search's start time. The evaluator of whole searches sets it (NOW_FIELD) so a test
# decides what "now" is; props.conf never uses it.
NOW_FIELD = "__search_now__"


def _f_now(args: Sequence[Node], env: Env) -> Value:
    now = env.get(NOW_FIELD)
    if not isinstance(now, float):
        raise UnsupportedProps("now() outside a search whose start time is set")
    return now


# strftime(X, Y): "takes a UNIX time value and renders it as a string using the format specified"
# (Search Reference, Date and Time functions). Splunk renders in the searching user's time zone; this
# renders in UTC, and only the format items the shipped searches use (anything else is refused).
_STRFTIME_ITEMS = frozenset("YmdHMS%")


def _f_strftime(args: Sequence[Node], env: Env) -> Value:
    if len(args) != 2:
        raise UnsupportedProps("strftime() takes a time and a format")
    when = _number(_single(evaluate(args[0], env), "strftime"))
    fmt = _single(evaluate(args[1], env), "strftime")
    if when is None or fmt is None:
        return None
    items = set(re.findall(r"%(.)", _text(fmt)))
    if not items <= _STRFTIME_ITEMS:
        raise UnsupportedProps(f"strftime() format items {sorted(items - _STRFTIME_ITEMS)}")
    return time.strftime(_text(fmt), time.gmtime(when))


def _f_round(args: Sequence[Node], env: Env) -> Value:
    v = _number(evaluate(args[0], env))
    digits = int(_number(evaluate(args[1], env)) or 0) if len(args) == 2 else 0
    return None if v is None else float(round(v, digits))


def _f_mvfind(args: Sequence[Node], env: Env) -> Value:
    # mvfind(MV, REGEX): index of the first value matching REGEX, else null.
    values = _values(evaluate(args[0], env))
    pattern = _single(evaluate(args[1], env), "mvfind")
    if pattern is None:
        return None
    for i, v in enumerate(values):
        if pcre2.search(_text(pattern), v):
            return float(i)
    return None


def _f_json_array_to_mv(args: Sequence[Node], env: Env) -> Value:
    # json_array_to_mv(<json array>): one value per element; strings lose their quotes, objects and
    # arrays stay JSON text (Search Reference, JSON functions).
    if len(args) != 1:
        raise UnsupportedProps("json_array_to_mv() with a second argument")
    v = _single(evaluate(args[0], env), "json_array_to_mv")
    if v is None:
        return None
    doc = _load_json(v)
    if not isinstance(doc, list):
        return None
    return _as_value([x for x in (_native(e) for e in doc) if isinstance(x, str)])


def _f_json_object(args: Sequence[Node], env: Env) -> Value:
    if len(args) % 2:
        raise UnsupportedProps("json_object() with an odd number of arguments")
    out: Dict[str, Any] = {}
    for i in range(0, len(args), 2):
        key = _single(evaluate(args[i], env), "json_object")
        value = _single(evaluate(args[i + 1], env), "json_object")
        if key is None:
            raise UnsupportedProps("json_object() with a null key")
        out[_text(key)] = None if value is None else _text(value)
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def _f_replace(args: Sequence[Node], env: Env) -> Value:
    v = _single(evaluate(args[0], env), "replace")
    pattern = _single(evaluate(args[1], env), "replace")
    repl = _single(evaluate(args[2], env), "replace")
    if v is None or pattern is None or repl is None:
        return None
    if re.search(r"\\\d", _text(repl)):
        raise UnsupportedProps("replace() with back-references is not implemented here")
    return pcre2.sub(_text(pattern), _text(repl), _text(v))


def _f_true(args: Sequence[Node], env: Env) -> Value:
    return True


def _f_null(args: Sequence[Node], env: Env) -> Value:
    return None


_FUNCTIONS: Dict[str, Callable[[Sequence[Node], Env], Value]] = {
    "coalesce": _f_coalesce,
    "if": _f_if,
    "case": _f_case,
    "lower": _f_lower,
    "mvdedup": _f_mvdedup,
    "mvappend": _f_mvappend,
    "mvmap": _f_mvmap,
    "mvfilter": _f_mvfilter,
    "json_extract": _f_json_extract,
    "json_extract_exact": _f_json_extract_exact,
    "spath": _f_spath,
    "match": _f_match,
    "nullif": _f_nullif,
    "isnull": _f_isnull,
    "isnotnull": _f_isnotnull,
    "tonumber": _f_tonumber,
    "true": _f_true,
    "null": _f_null,
    "upper": _f_upper,
    "substr": _f_substr,
    "strptime": _f_strptime,
    "now": _f_now,
    "round": _f_round,
    "strftime": _f_strftime,
    "mvfind": _f_mvfind,
    "json_array_to_mv": _f_json_array_to_mv,
    "json_object": _f_json_object,
    "replace": _f_replace,
}


# ------------------------------------------------------------------------------------ transforms
# transforms.conf.spec, FORMAT for search-time extractions: "FORMAT = <field-name>::<field-value>(
# <field-name>::<field-value>)* where field-name = [<string>|$<capturing-group-number>] and
# field-value = [<string>|$<capturing-group-number>]" and "NOTE: You cannot create concatenated
# fields with FORMAT at search time. That functionality is only available at index time."
_FORMAT_VALUE = re.compile(r"\$(\d+)|[^$]*")


@dataclass(frozen=True)
class RegexReport:
    name: str
    regex: Any  # a pcre2.Pattern
    field: str
    group: Optional[int]  # the capturing group that is the value, or None for a literal
    literal: str

    def apply(self, raw: str, fields: Fields, problems: List[str]) -> None:
        for m in _pcre_matches(self.regex, raw, self.name, problems):
            value = self.literal if self.group is None else m.group(self.group)
            if value:
                fields.setdefault(self.field, []).append(value)


def _pcre_matches(regex: Any, raw: str, name: str, problems: List[str]) -> Iterator[Any]:
    """Matches of a REPORT regex, as splunkd's PCRE finds them: when one match attempt exceeds
    MATCH_LIMIT or DEPTH_LIMIT, PCRE returns an error for it and the extraction stops there (the
    values of later matches are lost: the failure Splunk's Check Point add-on documents,
    "Keys not extracting due to large events")."""
    try:
        yield from regex.finditer(raw)
    except pcre2.LibraryError as exc:
        problems.append(f"[{name}] {exc}")


def _limit(options: Dict[str, str], key: str, default: int, name: str) -> int:
    text = options.get(key, str(default)).strip()
    if not text.isdigit() or int(text) < 1:
        raise UnsupportedProps(f"[{name}] {key} = {text}")
    return int(text)


def compile_report_regex(regex: str, match_limit: int, depth_limit: int) -> Any:
    """REGEX compiled for PCRE2 with the transform's limits.

    The pcre2 bindings (0.7.x) expose no match context setter for the limits, so they are set with
    PCRE2's documented pattern-start items (pcre2pattern, "Setting match resource limits":
    (*LIMIT_MATCH=d), (*LIMIT_DEPTH=d)); these can only lower the library's limits, which are far
    higher (10,000,000 by default). JIT is off: "the depth limit is ignored by JIT" (pcre2api), so
    with JIT the stand-in would be more lenient than the spec's DEPTH_LIMIT.
    """
    prefix = f"(*LIMIT_MATCH={match_limit})(*LIMIT_DEPTH={depth_limit})"
    try:
        return pcre2.compile(prefix + regex, jit=False)
    except pcre2.PatternError as exc:
        raise UnsupportedProps(f"REGEX does not compile in PCRE2: {exc}") from exc


def report_transform(transforms: Optional[configparser.RawConfigParser], name: str) -> RegexReport:
    if transforms is None or not transforms.has_section(name):
        raise UnsupportedProps(f"REPORT names transforms stanza [{name}], which is not there")
    options = {k.upper(): v for k, v in transforms.items(name)}
    unknown = set(options) - {"REGEX", "FORMAT", "MV_ADD", "SOURCE_KEY", "MATCH_LIMIT", "DEPTH_LIMIT"}
    if unknown:
        raise UnsupportedProps(f"[{name}] {sorted(unknown)}")
    if options.get("SOURCE_KEY", "_raw").strip() != "_raw":
        raise UnsupportedProps(f"[{name}] SOURCE_KEY other than _raw")
    if options.get("MV_ADD", "false").strip().lower() not in ("true", "1"):
        raise UnsupportedProps(f"[{name}] without MV_ADD = true (first-match-wins is not implemented)")
    fmt = _FORMAT.match(options.get("FORMAT", "").strip())
    if not fmt:
        raise UnsupportedProps(f"[{name}] FORMAT other than <field>::<value>")
    value = fmt.group(2).strip()
    if " " in value:
        raise UnsupportedProps(f"[{name}] FORMAT with several field::value pairs is not implemented")
    if not _FORMAT_VALUE.fullmatch(value):
        raise SplunkRuleViolation(
            f"[{name}] FORMAT value {value!r}: you cannot create concatenated fields with FORMAT at "
            "search time (transforms.conf.spec); a value is one $<n> or a literal"
        )
    regex = options.get("REGEX", "").strip()
    if re.search(r"\(\?<|\(\?P|\\[gk]", regex):
        raise UnsupportedProps(f"[{name}] named groups or back-references")
    compiled = compile_report_regex(
        regex,
        _limit(options, "MATCH_LIMIT", DEFAULT_MATCH_LIMIT, name),
        _limit(options, "DEPTH_LIMIT", DEFAULT_DEPTH_LIMIT, name),
    )
    group_m = re.fullmatch(r"\$(\d+)", value)
    group = int(group_m.group(1)) if group_m else None
    if group is not None and not 1 <= group <= compiled.groups:
        raise UnsupportedProps(f"[{name}] FORMAT names ${group}; the REGEX has {compiled.groups} groups")
    return RegexReport(name, compiled, fmt.group(1), group, "" if group is not None else value)


# ------------------------------------------------------------------------------------- extract
def extract(
    props: configparser.RawConfigParser,
    sourcetype: str,
    raw: str,
    transforms: Optional[configparser.RawConfigParser] = None,
    cutoff: Optional[int] = JSON_EXTRACTION_CUTOFF,
    problems: Optional[List[str]] = None,
    metadata: Optional[Dict[str, str]] = None,
    lookup_rows: Optional[Dict[str, List[Dict[str, str]]]] = None,
) -> Fields:
    """Search-time fields of one event of ``sourcetype``.

    ``problems`` (when given) receives what splunkd would log: a REPORT regex that hit its PCRE
    limit. ``cutoff`` is limits.conf's [spath] extraction_cutoff (None: no cut). ``metadata``: the
    event's default fields (``source``, ``host``...), there before any extraction. ``lookup_rows``:
    the rows of each lookup table by transforms.conf stanza name (a lookup with no rows given holds
    none, like an empty KV store collection).
    """
    if not props.has_section(sourcetype):
        raise UnsupportedProps(f"no props stanza [{sourcetype}]")
    conf_dir = getattr(props, "conf_dir", None)
    if transforms is None and conf_dir is not None and (conf_dir / "transforms.conf").exists():
        transforms = load_transforms(conf_dir / "transforms.conf")
    options = dict(props.items(sourcetype))
    reports: List[RegexReport] = []
    aliases: List[Tuple[str, str]] = []
    evals: List[Tuple[str, Node]] = []
    lookups: List[LookupStanza] = []
    kv_json = kv_auto = False
    for key, value in options.items():
        lower = key.lower()
        if lower in INDEX_TIME_KEYS:
            continue
        if lower == "kv_mode":
            if value.strip() not in ("json", "auto"):
                raise UnsupportedProps(f"KV_MODE = {value}")
            kv_json = value.strip() == "json"
            kv_auto = value.strip() == "auto"
        elif lower.startswith("report-"):
            for name in (n.strip() for n in value.split(",")):
                reports.append(report_transform(transforms, name))
        elif lower.startswith("fieldalias-"):
            pairs = _ALIAS_PAIR.findall(value)
            if not pairs or _ALIAS_PAIR.sub("", value).strip():
                raise UnsupportedProps(f"{key} = {value}")
            aliases.extend(pairs)
        elif lower.startswith("lookup"):
            # props.conf.spec: "The LOOKUP- prefix is actually case-insensitive. Acceptable variants
            # include: LOOKUP_<class>, LOOKUP<class>, lookup_<class>, lookup<class>".
            lookups.append(parse_lookup(key, value, transforms))
        elif lower.startswith("eval-"):
            try:
                evals.append((key.split("-", 1)[1], parse_expression(value)))
            except EvalSyntaxError as exc:
                raise UnsupportedProps(f"{key}: {exc}") from exc
        else:
            raise UnsupportedProps(f"[{sourcetype}] {key}")
    fields: Fields = {name: [value] for name, value in (metadata or {}).items()}
    report_problems: List[str] = []
    for report in reports:  # REPORT before KV_MODE, as splunk orders search-time extraction
        report.apply(raw, fields, report_problems)
    if kv_json:
        for name, values in json_fields(raw, cutoff=cutoff).items():
            fields.setdefault(name, []).extend(values)
    if kv_auto:
        for name, value in auto_kv_pairs(raw):
            fields.setdefault(name, []).append(value)
    for source, target in aliases:
        if source in fields:
            fields[target] = list(fields[source])
    env: Env = {name: _as_value(values) for name, values in fields.items()}
    env["_raw"] = raw
    computed = [(name, evaluate(node, env)) for name, node in evals]  # EVALs see the same input
    for name, result in computed:
        values = _values(result)
        if values:
            fields[name] = values
        else:
            fields.pop(name, None)
    # Lookups after calculated fields; each reads the fields as they were before any lookup ran
    # ("Splunk software does not support nested automatic lookups": Knowledge Manager Manual, "Make
    # your lookup automatic").
    before = {name: list(values) for name, values in fields.items()}
    for lookup in lookups:
        lookup.apply(before, fields, (lookup_rows or {}).get(lookup.transform, []))
    if problems is not None:
        problems.extend(report_problems)
    return fields


# ----------------------------------------------------------------------------------------- lookups
# props.conf.spec (Splunk 9.x to 10.x), LOOKUP-<class>:
#   "LOOKUP-<class> = $TRANSFORM (<match_field> (AS <match_field_in_event>)?)+ (OUTPUT|OUTPUTNEW
#    (<output_field> (AS <output_field_in_event>)? )+ )?"
#   "<match_field> specifies a field in the lookup table to match on. By default Splunk software looks
#    for a field with that same name in the event to match with (if <match_field_in_event> is not
#    provided). You must provide at least one match field."
#   "If they are not provided, all fields in the lookup table except for the match fields (and the
#    timestamp field if it is specified) are output for each matching event."
#   "If the output field list starts with the keyword "OUTPUTNEW" instead of "OUTPUT", then each output
#    field is only written out if it did not previous exist. Otherwise, the output fields are always
#    overridden. Any event that has all of the <match_field> values but no matching entry in the lookup
#    table clears all of the output fields."
#   "Splunk software processes lookups after it processes field extractions, field aliases, and
#    calculated fields (EVAL-* settings). This means that you can use extracted fields, aliased fields,
#    and calculated fields to specify lookups. But you can't use fields discovered by lookups in the
#    configurations of extracted fields, aliased fields, or calculated fields."
# transforms.conf.spec, KV store lookups: "external_type = kvstore", "collection = <string>",
# "fields_list = <string> * A comma- and space-delimited list of all fields that are supported by the
# external command" (the KV store lookup's fields: nothing else can be matched or output), and
# "case_sensitive_match = <bool> ... Default: true".
_LOOKUP_KEYS = {"EXTERNAL_TYPE", "COLLECTION", "FIELDS_LIST", "CASE_SENSITIVE_MATCH"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.{}]*$")


@dataclass(frozen=True)
class LookupStanza:
    transform: str
    matches: Tuple[Tuple[str, str], ...]  # (field in the table, field in the event)
    outputs: Tuple[Tuple[str, str], ...]  # (field in the table, field written to the event)
    only_new: bool  # OUTPUTNEW
    case_sensitive: bool

    def apply(self, before: Fields, fields: Fields, rows: List[Dict[str, str]]) -> None:
        values: List[str] = []
        for _, event_field in self.matches:
            found = before.get(event_field)
            if not found:
                return  # the event lacks a match field: the lookup does not apply
            if len(found) > 1:
                raise UnsupportedProps(f"lookup {self.transform}: multivalue match field {event_field}")
            values.append(found[0])

        def same(a: str, b: str) -> bool:
            return a == b if self.case_sensitive else a.lower() == b.lower()

        hits = [
            row
            for row in rows
            if all(same(str(row.get(table_field, "")), value) for (table_field, _), value in zip(self.matches, values))
        ]
        for table_field, event_field in self.outputs:
            if self.only_new and event_field in before:
                continue
            found = [str(row[table_field]) for row in hits if str(row.get(table_field) or "")]
            if found:
                fields[event_field] = found
            elif not self.only_new:
                fields.pop(event_field, None)  # OUTPUT: no matching entry clears the output field


def _pairs(words: List[str], what: str, key: str) -> List[Tuple[str, str]]:
    pairs: List[Tuple[str, str]] = []
    i = 0
    while i < len(words):
        name = words[i]
        if not _NAME.match(name) or name.upper() in ("AS", "OUTPUT", "OUTPUTNEW"):
            raise SplunkRuleViolation(f"{key}: {what} {name!r} is not a field name")
        if i + 1 < len(words) and words[i + 1].upper() == "AS":
            if i + 2 >= len(words) or not _NAME.match(words[i + 2]):
                raise SplunkRuleViolation(f"{key}: AS without a field name after {name!r}")
            pairs.append((name, words[i + 2]))
            i += 3
        else:
            pairs.append((name, name))
            i += 1
    return pairs


def parse_lookup(key: str, value: str, transforms: Optional[configparser.RawConfigParser]) -> LookupStanza:
    """One ``LOOKUP-<class>`` setting, checked against props.conf.spec and its transforms.conf stanza."""
    if "," in value:
        raise UnsupportedProps(f"{key}: comma-separated field lists are not implemented")
    words = value.split()
    if not words:
        raise SplunkRuleViolation(f"{key}: no lookup named")
    transform, rest = words[0], words[1:]
    if transforms is None or not transforms.has_section(transform):
        raise UnsupportedProps(f"{key} names transforms stanza [{transform}], which is not there")
    options = {k.upper(): v.strip() for k, v in transforms.items(transform)}
    if set(options) - _LOOKUP_KEYS or options.get("EXTERNAL_TYPE") != "kvstore" or not options.get("COLLECTION"):
        raise UnsupportedProps(f"[{transform}]: only KV store lookups (external_type = kvstore) are implemented")
    table_fields = [f for f in re.split(r"[\s,]+", options.get("FIELDS_LIST", "")) if f]
    if not table_fields:
        raise SplunkRuleViolation(f"[{transform}]: a KV store lookup needs fields_list")
    keyword = next((i for i, w in enumerate(rest) if w.upper() in ("OUTPUT", "OUTPUTNEW")), len(rest))
    matches = _pairs(rest[:keyword], "match field", key)
    if not matches:
        raise SplunkRuleViolation(f"{key}: you must provide at least one match field (props.conf.spec)")
    if keyword < len(rest):
        outputs = _pairs(rest[keyword + 1 :], "output field", key)
        if not outputs:
            raise SplunkRuleViolation(f"{key}: {rest[keyword]} with no output field")
    else:  # every field of the table except the match fields
        matched = {table for table, _ in matches}
        outputs = [(f, f) for f in table_fields if f not in matched and f != "_key"]
    for table_field, _ in (*matches, *outputs):
        if table_field not in table_fields:
            raise SplunkRuleViolation(f"{key}: {table_field!r} is not in [{transform}] fields_list")
    case = options.get("CASE_SENSITIVE_MATCH", "true").lower()
    if case not in ("true", "false", "1", "0"):
        raise UnsupportedProps(f"[{transform}] case_sensitive_match = {case}")
    return LookupStanza(
        transform,
        tuple(matches),
        tuple(outputs),
        only_new=keyword < len(rest) and rest[keyword].upper() == "OUTPUTNEW",
        case_sensitive=case in ("true", "1"),
    )
