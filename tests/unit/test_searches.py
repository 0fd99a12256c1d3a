"""Every shipped search is SPL that parses, and every dashboard is a Dashboard Studio definition.

No maintained SPL parser or Dashboard Studio schema is published on PyPI (splparser 0.2.0 is from
2014; splint-spl 0.1.0 is a handful of style rules), so this module carries a small, honest
checker. For every saved search, macro definition and dashboard data source it:

- expands macros from macros.conf (`name` and `name(args)`, with the argument count of the stanza
  ``[name(n)]``), recursively, failing on an unknown macro or a wrong argument count;
- replaces dashboard tokens ($tok$), failing on a token no input defines;
- checks quotes, parentheses and brackets balance, and splits the pipeline on ``|`` outside quotes
  and subsearch brackets; subsearches are checked as searches of their own;
- knows each command by name (a fixed list of SPL commands plus ``defenderlineage``) and parses the
  arguments of eval (assignments of full eval expressions: known functions, argument counts),
  where, stats/eventstats/streamstats/timechart/chart (known aggregations, ``as`` and ``by``), rex
  (the regex compiles; named groups become fields), rename, table/fields, sort, dedup, convert;
- follows the fields: before the first transforming command, a field read by eval, where, stats,
  rex or dedup must be one the events carry (KV_MODE=json names and CIM fields of the samples, run
  through props.conf, the defenderlineage fields, the log's key=value names taken from the modular
  input's format strings) or one an earlier command made; after stats, table, timechart or tstats,
  only the fields those produced exist.

It does not check search-command options exhaustively nor SPL semantics beyond that.
"""

from __future__ import annotations

import configparser
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import pytest

from defender_lineage_core.incident_store import INCIDENT_OUTPUT_FIELDS
from defender_lineage_core.lineage import OUTPUT_FIELDS
from tests.fixture_paths import SAMPLES
from tests.harness.graph_sim.tenant import SyntheticTenant
from tests.harness.searchtime import EvalSyntaxError, Node, extract, load_props, parse_expression, referenced_fields
from tests.harness.spl_pipeline import SplSyntaxError as SplError
from tests.harness.spl_pipeline import split_top

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
VIEWS = DEFAULT / "data" / "ui" / "views"
# The run_summary lines are written by the Splunk side's reporting module, run_failed by its stanza loop.
LOG_LINE_MODULES = [ROOT / "package" / "bin" / "defender_lineage_splunk" / n for n in ("reporting.py", "stanzas.py")]


def conf(name: str) -> configparser.RawConfigParser:
    """A .conf file as splunk reads it: a backslash at the end of a line continues the value."""
    text = (DEFAULT / name).read_text(encoding="utf-8")
    logical: List[str] = []
    for line in text.splitlines():
        if logical and logical[-1].endswith("\\"):
            logical[-1] = logical[-1][:-1] + "\n" + line
        else:
            logical.append(line)
    parser = configparser.RawConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    body = "\n".join(line.replace("\n", "\n\t") for line in logical)  # continuation lines indented
    parser.read_string(body)
    return parser


def joined(value: str) -> str:
    return value


# ---------------------------------------------------------------------------------------- macros
def macros() -> Dict[Tuple[str, int], Tuple[List[str], str]]:
    out: Dict[Tuple[str, int], Tuple[List[str], str]] = {}
    parser = conf("macros.conf")
    for section in parser.sections():
        m = re.fullmatch(r"([A-Za-z0-9_]+)(?:\((\d+)\))?", section)
        assert m, f"macro stanza [{section}]"
        count = int(m.group(2) or 0)
        args = [a.strip() for a in parser.get(section, "args", fallback="").split(",") if a.strip()]
        assert len(args) == count, f"[{section}] declares {len(args)} args"
        assert parser.get(section, "iseval", fallback="0") == "0", f"[{section}] eval macros are not checked"
        out[(m.group(1), count)] = (args, joined(parser.get(section, "definition")))
    return out


def _split_args(text: str) -> List[str]:
    args, depth, cur, quote = [], 0, "", False
    for ch in text:
        if ch == '"':
            quote = not quote
        if not quote and ch in "([":
            depth += 1
        if not quote and ch in ")]":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return args + ([cur.strip()] if cur.strip() else [])


def expand(search: str, table: Dict[Tuple[str, int], Tuple[List[str], str]], depth: int = 0) -> str:
    if depth > 10:
        raise SplError("macros nest more than 10 deep (a loop?)")

    def one(m: re.Match[str]) -> str:
        name, arg_text = m.group(1), m.group(2)
        args = _split_args(arg_text) if arg_text is not None else []
        if (name, len(args)) not in table:
            raise SplError(f"unknown macro `{m.group(0)[1:-1]}` ({len(args)} arguments)")
        params, body = table[(name, len(args))]
        for param, value in zip(params, args):
            body = body.replace(f"${param}$", value)
        return expand(body, table, depth + 1)

    out = re.sub(r"`([A-Za-z0-9_]+)(?:\(([^`]*)\))?`", one, search)
    if "`" in out:
        raise SplError("an unmatched backtick")
    return out


# ----------------------------------------------------------------------------------- the checker
COMMANDS = {
    # generating (after a leading |)
    "inputlookup",
    "makeresults",
    "rest",
    "tstats",
    # streaming and transforming commands this add-on may use
    "search",
    "where",
    "eval",
    "stats",
    "eventstats",
    "streamstats",
    "timechart",
    "chart",
    "table",
    "fields",
    "rename",
    "sort",
    "dedup",
    "head",
    "tail",
    "rex",
    "spath",
    "lookup",
    "outputlookup",
    "mvexpand",
    "makemv",
    "fillnull",
    "convert",
    "bin",
    "top",
    "rare",
    "append",
    "join",
    "defenderlineage",
    "fieldformat",
}
TRANSFORMING = {"stats", "timechart", "chart", "table", "tstats", "inputlookup", "top", "rare", "makeresults", "rest"}
STATS_FUNCTIONS = {
    "count",
    "dc",
    "distinct_count",
    "values",
    "list",
    "min",
    "max",
    "avg",
    "mean",
    "median",
    "sum",
    "latest",
    "earliest",
    "first",
    "last",
    "range",
    "stdev",
    "perc95",
    "p95",
    "mode",
}
INTERNAL = {"_time", "_raw", "source", "sourcetype", "index", "host", "splunk_server", "linecount", "eventtype", "tag"}
# What defenderlineage adds: the core's own lists, so the checker follows the contract as it changes.
DEFENDERLINEAGE = set(OUTPUT_FIELDS) | set(INCIDENT_OUTPUT_FIELDS)


TENANTS_LOOKUP = "ta_defender_lineage_tenants_lookup"


def log_fields() -> Set[str]:
    """key=value names of the inputs' run_summary and run_failed lines (from the format strings)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in LOG_LINE_MODULES)
    names = set(re.findall(r"(\w+)=\"?%", text))
    assert {"input", "status", "account", "tenant", "lag_seconds", "throttled", "error_type", "message"} <= names
    return names


def event_fields() -> Set[str]:
    props = load_props(DEFAULT / "props.conf")
    names: Set[str] = set(INTERNAL) | DEFENDERLINEAGE | log_fields()
    tenant = SyntheticTenant.generate(seed=7)
    for _i, _l, alert in tenant.alert_versions():
        names |= set(extract(props, "ms:defender:graph:alert", json.dumps(alert)))
        names |= {k for k in alert}  # keys whose value is null in every sample are still event fields
    for _i, _l, incident in tenant.incident_versions():
        names |= set(extract(props, "ms:defender:graph:incident", json.dumps(incident)))
        names |= {k for k in incident}
    audit = (SAMPLES / "action_audit.json").read_text(encoding="utf-8")  # response actions' audit events
    names |= set(extract(props, "ms:defender:graph:action", audit))
    # tenant_name comes from the automatic tenants lookup (props.conf LOOKUP-tenant_name) when the
    # Tenants tab names the event's tenant: extract it so, with one row for the sample's tenant.
    row = {"tenant_id": json.loads(audit)["tenant_id"], "tenant_name": "sample", "account": "a"}
    names |= set(extract(props, "ms:defender:graph:action", audit, lookup_rows={TENANTS_LOOKUP: [row]}))
    return names


def subsearches(text: str) -> List[str]:
    out, depth, start, quote = [], 0, 0, False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        if quote:
            continue
        if ch == "[":
            if depth == 0:
                start = i + 1
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                out.append(text[start:i])
    return out


def _words(args: str) -> List[str]:
    return [w for w in re.findall(r'"[^"]*"|\S+', args)]


# Top-level alert properties Graph lists after the (long) description and recommendedActions
# (the order of tests/fixtures/samples/alert_v2.json, as Graph returns them). KV_MODE = json reads
# the first 5,000 bytes of an event only (limits.conf [spath] extraction_cutoff), so on a large
# alert these are cut: a search over alerts reads them by path, spath(_raw, "<name>").
LATE_ALERT_FIELDS = {
    "recommendedActions",
    "category",
    "categories",
    "assignedTo",
    "alertWebUrl",
    "incidentWebUrl",
    "actorDisplayName",
    "threatDisplayName",
    "threatFamilyName",
    "mitreTechniques{}",
    "createdDateTime",
    "lastUpdateDateTime",
    "firstActivityDateTime",
    "lastActivityDateTime",
    "resolvedDateTime",
    "investigationState",
    "alertPolicyId",
}


class Checker:
    def __init__(self, known_event_fields: Set[str]) -> None:
        self.event_fields = known_event_fields
        self.cut_fields: Set[str] = set()  # event fields KV_MODE cannot be trusted to extract

    def check(self, search: str) -> List[str]:
        """Check one expanded search; returns the command names, in order."""
        search = search.strip()
        for sub in subsearches(search):
            inner = sub.strip()
            if not (inner.startswith("search ") or inner.startswith("|")):
                raise SplError(f"subsearch must start with search or |: {inner[:60]!r}")
            self.check(inner[len("search ") :] if inner.startswith("search ") else inner)
        segments = split_top(search, "|")
        generating = segments[0].strip() == ""
        if generating:
            segments = segments[1:]
        else:
            segments[0] = "search " + segments[0]
        names: List[str] = []
        fields: Optional[Set[str]] = None  # None: the events' fields; a set after a transforming command
        made: Set[str] = set()
        for index, segment in enumerate(segments):
            segment = segment.strip()
            if not segment:
                raise SplError("an empty command (two pipes in a row?)")
            name, _, args = segment.partition(" ")
            name = name.strip().lower()
            if name not in COMMANDS:
                raise SplError(f"unknown command {name!r}")
            if index == 0 and generating and name not in {"inputlookup", "makeresults", "rest", "tstats", "search"}:
                raise SplError(f"{name} cannot start a search")
            names.append(name)
            fields, made = self.command(name, args.strip(), fields, made)
        return names

    def need(self, names: List[str], fields: Optional[Set[str]], made: Set[str], where: str) -> None:
        for n in names:
            if n in made or n in INTERNAL:
                continue
            if fields is None and n in self.cut_fields:
                raise SplError(f"{where}: {n!r} comes after byte 5,000 of a large alert: read it with spath(_raw, ...)")
            if fields is None:
                if n not in self.event_fields:
                    raise SplError(f"{where}: field {n!r} is not a field of the add-on's events")
            elif n not in fields:
                raise SplError(f"{where}: field {n!r} does not exist at this point (after a transforming command)")

    def expr(self, text: str, where: str) -> List[str]:
        try:
            return referenced_fields(parse_expression(text))
        except EvalSyntaxError as exc:
            raise SplError(f"{where}: {exc} in {text[:100]!r}") from exc

    def command(
        self, name: str, args: str, fields: Optional[Set[str]], made: Set[str]
    ) -> Tuple[Optional[Set[str]], Set[str]]:
        made = set(made)
        if name == "eval" or name == "fieldformat":
            for assignment in split_top(args, ","):
                m = re.fullmatch(r"\s*([A-Za-z_][\w.]*)\s*=(?!=)(.+)", assignment, re.DOTALL)
                if not m:
                    raise SplError(f"eval: not an assignment: {assignment[:60]!r}")
                self.need(self.expr(m.group(2), "eval"), fields, made, "eval")
                made.add(m.group(1))
        elif name == "where":
            self.need(self.expr(args, "where"), fields, made, "where")
        elif name in ("stats", "eventstats", "streamstats", "timechart", "chart"):
            out = self.stats(name, args, fields, made)
            if name in ("stats", "timechart", "chart"):
                return out, set()
            made |= out
        elif name == "rex":
            m = re.search(r'"((?:[^"\\]|\\.)*)"', args)
            if not m:
                raise SplError("rex without a quoted regex")
            field_opt = re.search(r"\bfield=(\w+)", args[: m.start()])
            if field_opt:
                self.need([field_opt.group(1)], fields, made, "rex")
            pattern = m.group(1).replace('\\"', '"')
            try:
                compiled = re.compile(re.sub(r"\(\?<(?=[A-Za-z])", "(?P<", pattern))
            except re.error as exc:
                raise SplError(f"rex: {exc}") from exc
            made |= set(compiled.groupindex)
        elif name == "rename":
            for old, new in re.findall(r'("[^"]+"|\S+)\s+as\s+("[^"]+"|\S+)', args, re.IGNORECASE):
                self.need([old.strip('"')], fields, made, "rename")
                made.add(new.strip('"'))
        elif name in ("table", "fields"):
            names = [w.strip('",') for w in _words(args) if w not in ("-", "+")]
            remove = args.startswith("-")
            if not remove:
                self.need([n for n in names if "*" not in n], fields, made, name)
            if name == "table":
                return set(names), set()
        elif name in ("dedup", "sort", "mvexpand"):
            words = [w for w in _words(args) if not re.fullmatch(r"\d+|\w+=\S+|sortby", w)]
            self.need([w.lstrip("+-") for w in words if w.lstrip("+-")], fields, made, name)
        elif name == "convert":
            for fn, field in re.findall(r"(\w+)\((\w+)\)", args):
                if fn not in ("ctime", "mktime", "dur2sec", "num"):
                    raise SplError(f"convert: unknown function {fn}")
                self.need([field], fields, made, "convert")
        elif name == "tstats":
            m = re.search(r"\bby\s+(.+)$", args)
            return ({"count"} | set(m.group(1).replace(",", " ").split()) if m else {"count"}), set()
        elif name == "lookup":
            m = re.fullmatch(
                r"(\w+)\s+(\w+)(?:\s+AS\s+(\w+))?\s+OUTPUT(?:NEW)?\s+(.+)", args, re.IGNORECASE | re.DOTALL
            )
            if not m:
                raise SplError(f"lookup: cannot read {args!r}")
            self.need([m.group(3) or m.group(2)], fields, made, "lookup")
            for out, alias in re.findall(r"(\w+)(?:\s+AS\s+(\w+))?", m.group(4), re.IGNORECASE):
                made.add(alias or out)
        elif name == "defenderlineage":
            if args and not re.fullmatch(r"incidents=(true|false|t|f|1|0)", args):
                raise SplError(f"defenderlineage: unknown arguments {args!r}")
            made |= DEFENDERLINEAGE
        elif name == "head":
            if args and not re.fullmatch(r"\d+", args):
                raise SplError(f"head {args!r}")
        elif name in TRANSFORMING:
            return None, set()
        return fields, made

    def stats(self, name: str, args: str, fields: Optional[Set[str]], made: Set[str]) -> Set[str]:
        by: List[str] = []
        m = re.search(r"\s+by\s+(.+)$", args, re.DOTALL)
        if m:
            by = [w.strip(",") for w in m.group(1).split() if w.strip(",")]
            args = args[: m.start()]
        out: Set[str] = set(by) | ({"_time"} if name == "timechart" else set())
        self.need(by, fields, made, name)
        rest = args
        rest = re.sub(
            r"\b(current|window|time_window|global|reset_on_change|allnum|span|limit|useother|usenull)=\S+", "", rest
        )
        pattern = re.compile(
            r"\s*(\w+)(?:\((eval\((?:[^()]|\((?:[^()]|\([^()]*\))*\))*\)|[^()]*)\))?(?:\s+as\s+(\"[^\"]+\"|[\w.]+))?\s*,?",
            re.IGNORECASE,
        )
        pos = 0
        while pos < len(rest.rstrip()):
            agg = pattern.match(rest, pos)
            if not agg or agg.end() == pos:
                raise SplError(f"{name}: cannot read {rest[pos : pos + 60]!r}")
            fn, arg, alias = agg.group(1).lower(), agg.group(2), agg.group(3)
            if fn not in STATS_FUNCTIONS:
                raise SplError(f"{name}: unknown function {fn}()")
            if arg:
                if arg.startswith("eval("):
                    self.need(self.expr(arg[5:-1], name), fields, made, name)
                else:
                    self.need([arg.strip("'\"")], fields, made, name)
            out.add((alias or (f"{fn}({arg})" if arg else fn)).strip('"'))
            pos = agg.end()
        return out


# ------------------------------------------------------------------------------- what is shipped
def dashboards() -> Dict[str, Tuple[ET.Element, dict]]:
    out = {}
    for path in sorted(VIEWS.glob("*.xml")):
        root = ET.parse(path).getroot()  # noqa: S314  # the add-on's own files
        definition = root.find("definition")
        assert definition is not None and definition.text, path.name
        out[path.stem] = (root, json.loads(definition.text))
    return out


def shipped_searches() -> List[Tuple[str, str, Set[str]]]:
    """(where, search, tokens it may use) for every saved search, macro and dashboard data source."""
    out: List[Tuple[str, str, Set[str]]] = []
    saved = conf("savedsearches.conf")
    for section in saved.sections():
        out.append((f"savedsearches [{section}]", joined(saved.get(section, "search")), set()))
    for (name, count), (_args, body) in macros().items():
        if not re.fullmatch(r"\d+", body.strip()):
            out.append((f"macro {name}({count})", body, set()))
    for view, (_root, definition) in dashboards().items():
        tokens = {"global_time.earliest", "global_time.latest"}
        for input_def in definition.get("inputs", {}).values():
            token = input_def.get("options", {}).get("token")
            if token:
                tokens.add(token)
                if input_def["type"] == "input.timerange":
                    tokens |= {f"{token}.earliest", f"{token}.latest"}
        for ds_id, ds in definition["dataSources"].items():
            out.append((f"{view} {ds_id}", ds["options"]["query"], tokens))
    return out


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker(event_fields())


SEARCHES = shipped_searches()


@pytest.mark.parametrize(("where", "search", "tokens"), SEARCHES, ids=[s[0] for s in SEARCHES])
def test_every_shipped_search_parses(checker: Checker, where: str, search: str, tokens: Set[str]) -> None:
    for token in re.findall(r"\$([^$\s]+)\$", search):
        assert token in tokens, f"{where}: token ${token}$ is defined by no input"
    text = re.sub(r"\$[^$\s]+\$", "x", search)
    expanded = expand(text, macros())
    if where.startswith("macro "):
        # A macro that is a pipeline fragment (starts with a command) is checked after a base search.
        first = expanded.strip().split()[0]
        if first in COMMANDS and first != "search" and not first.startswith("("):
            expanded = 'sourcetype="ms:defender:graph:alert" | ' + expanded
    alerts_only = 'sourcetype="ms:defender:graph:alert"' in expanded and "graph:incident" not in expanded
    checker.cut_fields = LATE_ALERT_FIELDS if alerts_only else set()
    try:
        checker.check(expanded)
    finally:
        checker.cut_fields = set()


def test_every_shipped_search_uses_the_index_macro() -> None:
    for where, search, _tokens in SEARCHES:
        if where.startswith("macro ") or search.startswith(f"| inputlookup {TENANTS_LOOKUP} "):
            continue  # a macro is checked where it is used; the tenants lookup reads no index
        assert re.search(r"`defender_lineage_(index|alerts|incidents|logs|actions)`", search), where
        assert not re.search(r"\bindex\s*=\s*\*", search), f"{where} searches index=*"


@pytest.mark.parametrize(
    "bad",
    [
        '`defender_lineage_alerts` | stats count by id | where severity=="high"',  # gone after stats
        "`defender_lineage_alerts` | eval x=lower(sevrity)",  # typo
        "`defender_lineage_alerts` | eval x=nosuchfunction(id)",
        "`defender_lineage_alerts` | eval x=if(id, 1)",  # wrong argument count
        "`defender_lineage_alerts` | stats frobnicate(id)",
        "`defender_lineage_alerts` | frobnicate",
        '`defender_lineage_alerts` | eval x="unclosed',
        '`defender_lineage_alerts` | where (id=="1"',
        "`defender_lineage_nope`",
        "`defender_lineage_latest(1)`",
        "`defender_lineage_alerts` | | table id",
        '`defender_lineage_alerts` | rex "(?<x>["',
        "`defender_lineage_alerts` | eval x=mvmap(json_array_to_mv(id), 1)",
    ],
)
def test_the_checker_rejects_broken_spl(checker: Checker, bad: str) -> None:
    with pytest.raises(SplError):
        checker.check(expand(bad, macros()))


def test_the_checker_rejects_cut_alert_fields(checker: Checker) -> None:
    checker.cut_fields = LATE_ALERT_FIELDS
    try:
        with pytest.raises(SplError):
            checker.check(expand("`defender_lineage_alerts` | table id incidentWebUrl", macros()))
        checker.check(expand('`defender_lineage_alerts` | eval u=spath(_raw, "incidentWebUrl") | table id u', macros()))
    finally:
        checker.cut_fields = set()


def test_saved_searches_are_shipped_disabled_scheduled_and_described() -> None:
    saved = conf("savedsearches.conf")
    names = saved.sections()
    assert "TA-defender-lineage - Rebuild incident store" in names
    expected = {
        "TA-defender-lineage - Incident spans multiple products",
        "TA-defender-lineage - Endpoint then identity alert not correlated by Defender",
        "TA-defender-lineage - High-severity alert without an incident",
        "TA-defender-lineage - Incident merged into another",
        "TA-defender-lineage - Collection stalled",
    }
    assert expected <= set(names)
    for section in names:
        options = dict(saved.items(section))
        assert options["disabled"] == "1", section
        assert options["enableSched"] == "1", section
        assert re.fullmatch(r"[\d*/,\-]+( [\d*/,\-]+){4}", options["cron_schedule"]), section
        assert options["dispatch.earliest_time"] and options["dispatch.latest_time"], section
        assert len(options["description"]) > 80, section
        if section in expected:
            assert "Tune" in options["description"], f"{section}: say how to tune it"


# ------------------------------------------------------------------------------ Dashboard Studio
VIZ_TYPES = {
    "splunk.table",
    "splunk.column",
    "splunk.bar",
    "splunk.line",
    "splunk.area",
    "splunk.pie",
    "splunk.singlevalue",
    "splunk.sankey",
    "splunk.markdown",
    "splunk.events",
}
INPUT_TYPES = {"input.timerange", "input.dropdown", "input.multiselect", "input.text"}
DS_TYPES = {"ds.search", "ds.chain", "ds.savedSearch"}
EVENT_HANDLERS = {"drilldown.customUrl", "drilldown.setToken", "drilldown.linkToSearch", "drilldown.linkToDashboard"}


def test_dashboards_are_dashboard_studio_definitions() -> None:
    boards = dashboards()
    assert set(boards) == {"defender_lineage", "collection_health"}
    for view, (root, d) in boards.items():
        assert root.tag == "dashboard" and root.get("version") == "2", view
        assert (root.findtext("label") or "").strip(), view
        assert set(d) <= {"title", "description", "dataSources", "visualizations", "inputs", "layout", "defaults"}
        assert d["title"] and isinstance(d["dataSources"], dict) and isinstance(d["visualizations"], dict)
        for ds_id, ds in d["dataSources"].items():
            assert ds["type"] in DS_TYPES, (view, ds_id)
            assert ds["options"]["query"].strip(), (view, ds_id)
            if ds["type"] == "ds.chain":
                assert ds["options"]["extend"] in d["dataSources"], (view, ds_id)
        used_ds: Set[str] = set()
        for viz_id, viz in d["visualizations"].items():
            assert viz["type"] in VIZ_TYPES, (view, viz_id)
            if viz["type"] != "splunk.markdown":
                assert viz["dataSources"]["primary"] in d["dataSources"], (view, viz_id)
                used_ds.add(viz["dataSources"]["primary"])
            for handler in viz.get("eventHandlers", []):
                assert handler["type"] in EVENT_HANDLERS, (view, viz_id)
                if handler["type"] == "drilldown.customUrl":
                    url = handler["options"]["url"]
                    m = re.fullmatch(r"\$row\.(\w+)\.value\$", url)
                    assert m, url
                    query = d["dataSources"][viz["dataSources"]["primary"]]["options"]["query"]
                    assert m.group(1) in query.rsplit("|", 1)[-1], f"{viz_id}: the table has no {m.group(1)} column"
        for input_id, input_def in d.get("inputs", {}).items():
            assert input_def["type"] in INPUT_TYPES, (view, input_id)
            assert input_def["options"]["token"], (view, input_id)
            assert "defaultValue" in input_def["options"], (view, input_id)
            for source in input_def.get("dataSources", {}).values():
                assert source in d["dataSources"], (view, input_id)
                used_ds.add(source)
        layout = d["layout"]
        assert layout["type"] in ("grid", "absolute"), view
        placed = [block["item"] for block in layout["structure"]]
        assert sorted(placed) == sorted(d["visualizations"]), f"{view}: every visualization placed once"
        for block in layout["structure"]:
            assert set(block["position"]) == {"x", "y", "w", "h"}, (view, block["item"])
            assert block["position"]["x"] + block["position"]["w"] <= layout["options"]["width"], block["item"]
        assert set(layout.get("globalInputs", [])) == set(d.get("inputs", {})), view
        assert used_ds == set(d["dataSources"]), f"{view}: unused data sources {set(d['dataSources']) - used_ds}"
        qp = d["defaults"]["dataSources"]["ds.search"]["options"]["queryParameters"]
        assert qp == {"earliest": "$global_time.earliest$", "latest": "$global_time.latest$"}, view


def test_lineage_dashboard_has_the_promised_panels() -> None:
    d = dashboards()["defender_lineage"][1]
    types = {v["type"] for v in d["visualizations"].values()}
    assert "splunk.sankey" in types
    flow = d["dataSources"]["ds_flow"]["options"]["query"]
    assert flow.rstrip().endswith("stats count by source_node target_node")  # source, target, value
    blog = d["dataSources"]["ds_blog"]["options"]["query"]
    assert "values(serviceSource) AS serviceSource" in blog and "by index, sourcetype" in blog
    assert {i["type"] for i in d["inputs"].values()} == {"input.timerange", "input.dropdown"}


def test_nav_keeps_the_configuration_pages_and_shows_both_dashboards() -> None:
    nav = ET.parse(DEFAULT / "data" / "ui" / "nav" / "default.xml").getroot()  # noqa: S314
    views = [v.get("name") for v in nav.iter("view")]
    assert views[0] == "inputs" and nav.find("view[@name='inputs']").get("default") == "true"  # type: ignore[union-attr]
    assert {"configuration", "search", "defender_lineage", "collection_health"} <= set(views)


# ------------------------------------------------------------- alerting, throttling, Enterprise Security
DETECTIONS = {
    "TA-defender-lineage - Incident spans multiple products",
    "TA-defender-lineage - Endpoint then identity alert not correlated by Defender",
    "TA-defender-lineage - High-severity alert without an incident",
    "TA-defender-lineage - Alert streamed but missing from alerts_v2",
}
# Coverage gaps are visibility problems, not entities at risk: a notable, never a risk score.
WITHOUT_RISK = {"TA-defender-lineage - Alert streamed but missing from alerts_v2"}
TECHNIQUE = re.compile(r"T\d{4}(\.\d{3})?")


def final_table(search: str) -> List[str]:
    last = split_top(search, "|")[-1].strip()
    assert last.startswith("table "), "a correlation search ends with its table"
    return last[len("table ") :].split()


def chosen_values(node: Node) -> List[Node]:
    """The expressions whose value an eval expression can take (the branches of if/case/coalesce)."""
    if node.kind == "call" and node.value == "if":
        return chosen_values(node.args[1]) + chosen_values(node.args[2])
    if node.kind == "call" and node.value == "case":
        return [v for branch in node.args[1::2] for v in chosen_values(branch)]
    if node.kind == "call" and node.value == "coalesce":
        return [v for arg in node.args for v in chosen_values(arg)]
    return [node]


def reads_clock(node: Node) -> bool:
    return (node.kind == "call" and node.value in ("now", "time")) or any(reads_clock(a) for a in node.args)


def alerting_searches() -> List[Tuple[str, Dict[str, str]]]:
    saved = conf("savedsearches.conf")
    return [(s, dict(saved.items(s))) for s in saved.sections() if saved.get(s, "alert.track", fallback="0") == "1"]


@pytest.mark.parametrize(("section", "options"), alerting_searches(), ids=[s for s, _o in alerting_searches()])
def test_throttling_is_per_result_on_stable_fields_of_the_output(section: str, options: Dict[str, str]) -> None:
    # savedsearches.conf.spec: with alert.digest_mode = true (the default) the actions apply to the
    # whole result set and field-based suppression silences the whole search; per result needs
    # alert.digest_mode = 0, and then alert.suppress.fields "*must* be specified".
    assert options.get("alert.suppress") == "1", section
    assert options.get("alert.digest_mode") == "0", section
    fields = [f.strip() for f in options["alert.suppress.fields"].split(",")]
    table = final_table(options["search"])
    assert fields and set(fields) <= set(table), f"{section}: suppressing on {fields}, output has {table}"
    # Stable keys: no suppression field's value is computed from the clock (a minute count changes
    # every run). A condition may read the clock; the values it chooses between may not.
    for command in split_top(expand(options["search"], macros()), "|"):
        name, _, args = command.strip().partition(" ")
        if name != "eval":
            continue
        for assignment in split_top(args, ","):
            target, _, expression = assignment.partition("=")
            if target.strip() in fields:
                for value in chosen_values(parse_expression(expression)):
                    assert not reads_clock(value), f"{section}: {target.strip()} changes with time"


@pytest.mark.parametrize("section", sorted(DETECTIONS))
def test_detections_are_enterprise_security_correlation_searches(checker: Checker, section: str) -> None:
    options = dict(conf("savedsearches.conf").items(section))
    table = set(final_table(options["search"]))
    assert options["action.correlationsearch.enabled"] == "1"
    assert options["action.correlationsearch.label"] == section
    annotations = json.loads(options["action.correlationsearch.annotations"])
    assert isinstance(annotations["mitre_attack"], list)
    assert all(TECHNIQUE.fullmatch(t) for t in annotations["mitre_attack"])
    assert options["action.notable"] == "1"
    for key in ("rule_title", "rule_description", "security_domain", "severity", "drilldown_name", "drilldown_search"):
        assert options[f"action.notable.param.{key}"].strip(), key
    assert options["action.notable.param.security_domain"] in {
        "access",
        "endpoint",
        "network",
        "threat",
        "identity",
        "audit",
    }
    # Every $field$ the notable and the risk message name is a field of the result.
    for key in ("rule_title", "rule_description", "drilldown_name", "drilldown_search"):
        for token in re.findall(r"\$(\w+)\$", options[f"action.notable.param.{key}"]):
            assert token in table, f"{section}: {key} names ${token}$, not in {sorted(table)}"
    for token in re.findall(r"\$(\w+)\$", options.get("action.risk.param._risk_message", "")):
        assert token in table, token
    # The drill-down is a search that parses, with the tokens filled in.
    drill = re.sub(r"\$\w+\$", "x", options["action.notable.param.drilldown_search"])
    checker.check(expand(drill, macros()))
    assert "defenderlineage" in drill  # it shows the lineage
    assert "lineage_dashboard" in table or "alertWebUrl" in table
    if section in WITHOUT_RISK:
        assert not any(k.startswith("action.risk") for k in options), section
        assert options["action.notable.param.security_domain"] == "audit"
        return
    risks = json.loads(options["action.risk.param._risk"])
    assert options["action.risk"] == "1" and risks
    for risk in risks:
        assert risk["risk_object_field"] in table
        assert risk["risk_object_type"] in {"user", "system"}
        assert 0 < risk["risk_score"] <= 100


def test_operational_searches_are_plain_alerts() -> None:
    saved = conf("savedsearches.conf")
    for section in saved.sections():
        if section not in DETECTIONS:
            assert not any(
                k.startswith(("action.correlationsearch", "action.notable", "action.risk"))
                for k in saved.options(section)
            ), section


def test_no_default_searches_index_main() -> None:
    for name in ("macros.conf", "savedsearches.conf"):
        text = (DEFAULT / name).read_text(encoding="utf-8")
        assert not re.search(r"^[^#\n]*\bindex\s*=\s*main\b", text, re.MULTILINE), name
    for _where, search, _tokens in SEARCHES:
        assert not re.search(r"\bindex\s*=\s*main\b", expand(re.sub(r"\$[^$\s]+\$", "x", search), macros()))


def test_rebuild_reads_only_what_is_new() -> None:
    options = dict(conf("savedsearches.conf").items("TA-defender-lineage - Rebuild incident store"))
    search = options["search"]
    # An overlapping window of index time: twice the 15-minute schedule.
    assert options["cron_schedule"] == "*/15 * * * *"
    m = re.search(r"_index_earliest=-(\d+)m@m", search)
    assert m and 15 < int(m.group(1)) <= 60
    # ... and an older version never replaces a newer one already stored.
    assert "lookup ta_defender_lineage_incidents_lookup _key OUTPUT last_update_date_time" in search
    assert re.search(
        r"where isnull\(stored_update\) OR stored_update==\"\" OR last_update_date_time>=stored_update", search
    )


def test_evidence_macro_names_each_evidence_type() -> None:
    """`defender_lineage_evidence` run on the sample alert (tests/harness/spl_pipeline.py): the
    legacy entityType of every evidence. With json_extract (a period is a path step) every
    evidence was "Other"."""
    from tests.fixture_paths import SAMPLES
    from tests.harness.spl_pipeline import Pipeline

    raw = (SAMPLES / "alert_v2.json").read_text(encoding="utf-8")
    event = {"_raw": raw, "index": "defender", "sourcetype": "ms:defender:graph:alert", "_time": 1.0}
    table = macros()
    search = expand("index=defender | `defender_lineage_evidence`", table)
    (out,) = Pipeline(0.0).run(search, [dict(event)])
    assert out["entityType"] == ["Machine", "User", "Process", "File", "Url", "Ip"]
    assert out["ipAddress"] == "198.51.100.77" and out["fileName"] == ["powershell.exe", "a.ps1"]
    old = table[("defender_lineage_evidence", 0)][1].replace("json_extract_exact(", "json_extract(")
    (out,) = Pipeline(0.0).run("index=defender | " + old, [dict(event)])
    assert set(out["entityType"]) == {"Other"}
