"""Run a BUILT custom alert action the way splunkd does, and read the events it wrote.

The protocol (Splunk docs, "Create custom alert actions": the script and its payload;
alert_actions.conf.spec ``payload_format = json``): splunkd runs ``<python> <app>/bin/<action>.py
--execute`` with cwd = the app's bin directory and writes one JSON payload to its stdin: ``app``,
``owner``, ``search_name``, ``sid``, ``server_uri``, ``server_host``, ``session_key``,
``results_file`` (the search's results, a gzipped CSV in the job's dispatch directory),
``results_link``, ``search_uri`` and ``configuration`` (the action's ``param.*`` values from
alert_actions.conf, overridden by the saved search's ``action.<name>.param.*`` or ``| sendalert``'s
``param.*`` arguments). ``$result.<field>$`` tokens in a parameter are replaced with that field of
the FIRST result (Splunk docs, "Use tokens in email notifications": result tokens take the first
result's value), which is why the actions read each row from the results file.

Audit events: the actions write them with the Common Action Model's ``writeevents`` as stash files
in ``$SPLUNK_HOME/var/spool/splunk`` (``*.stash_common_action_model``), which splunkd indexes
through its default spool input. :func:`spool_events` reads them back as splunkd splits them: the
``***SPLUNK*** index=... source=...`` header line, events separated by the CAM breaker line, and
each event's ``***Common Action Model*** ... sourcetype="..."`` line, which sets the sourcetype
(and orig_sid/orig_rid) and is not part of ``_raw``. No splunkd endpoint is involved.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from tests.harness.modinput_runner import _environment, _prepare_home, _run
from tests.harness.splunkd_standin import SplunkdStandin
from tests.harness.splunkd_standin.server import parse_conf_file

CAM_BREAKER = "==##~~##~~  1E8N3D4E6V5E7N2T9 ~~##~~##=="
_TOKEN = re.compile(r"\$result\.([^$]+)\$")


@dataclass
class SpoolEvent:
    index: str
    source: str
    sourcetype: str
    orig_action_name: str
    orig_sid: str
    orig_rid: str
    raw: str
    fields: Dict[str, Any] = field(default_factory=dict)  # _raw parsed as JSON (KV_MODE = json)


@dataclass
class ActionResult:
    returncode: int
    stdout: str
    stderr: str
    events: List[SpoolEvent]
    log: str  # the action's own log file(s)


def _header_fields(line: str) -> Dict[str, str]:
    return {k: v for k, v in (part.split("=", 1) for part in shlex.split(line)[1:] if "=" in part)}


def parse_stash(text: str) -> List[SpoolEvent]:
    """One stash file as splunkd indexes it (see the module docstring)."""
    header, _, body = text.partition("\n")
    assert header.startswith("***SPLUNK***"), f"not a stash file: {header[:80]!r}"
    meta = _header_fields(header)
    events = []
    for chunk in body.split("\n" + CAM_BREAKER + "\n"):
        chunk = chunk[len(CAM_BREAKER) + 1 :] if chunk.startswith(CAM_BREAKER + "\n") else chunk
        if not chunk.strip():
            continue
        idline, _, raw = chunk.partition("\n")
        assert idline.startswith("***Common Action Model***"), f"event without CAM header: {idline[:80]!r}"
        cam = _header_fields(idline.replace("***Common Action Model***", "CAM", 1))
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        events.append(
            SpoolEvent(
                index=meta.get("index", ""),
                source=meta.get("source", ""),
                sourcetype=cam.get("sourcetype", "stash_common_action_model"),
                orig_action_name=cam.get("orig_action_name", ""),
                orig_sid=cam.get("orig_sid", ""),
                orig_rid=cam.get("orig_rid", ""),
                raw=raw,
                fields=parsed if isinstance(parsed, dict) else {},
            )
        )
    return events


def spool_events(splunk_home: Path) -> List[SpoolEvent]:
    spool = splunk_home / "var" / "spool" / "splunk"
    return [e for f in sorted(spool.glob("*.stash_*")) for e in parse_stash(f.read_text(encoding="utf-8"))]


def action_defaults(addon: Path, action: str) -> Dict[str, str]:
    """``param.*`` of the action's stanza in the built alert_actions.conf."""
    stanza = parse_conf_file(addon / "default" / "alert_actions.conf").get(action, {})
    return {k[len("param.") :]: v for k, v in stanza.items() if k.startswith("param.") and k != "param._cam"}


def substitute_result_tokens(configuration: Mapping[str, str], rows: Sequence[Mapping[str, str]]) -> Dict[str, str]:
    first = rows[0] if rows else {}
    return {k: _TOKEN.sub(lambda m: str(first.get(m.group(1), "")), v) for k, v in configuration.items()}


def write_results(path: Path, rows: Sequence[Mapping[str, str]]) -> None:
    """The results file: a gzipped CSV, one column per field (splunkd adds __mv_ columns; unused here)."""
    names: List[str] = []
    for row in rows:
        names += [k for k in row if k not in names]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=names or ["_raw"])
    writer.writeheader()
    for row in rows:
        writer.writerow(dict(row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write(text.getvalue())


def run_alert_action(
    addon: Path,
    action: str,
    python: str,
    standin: SplunkdStandin,
    splunk_home: Path,
    rows: Sequence[Mapping[str, str]],
    params: Optional[Mapping[str, str]] = None,
    search_name: str = "Defender triage",
    owner: str = "analyst",
    sid: str = "scheduler__analyst__search__RMD5triage_at_1765100000_42",
    timeout: float = 120.0,
    env: Optional[Mapping[str, str]] = None,
) -> ActionResult:
    """Run ``action`` as splunkd runs a custom alert action; events are this run's new spool events."""
    _prepare_home(splunk_home)
    spool = splunk_home / "var" / "spool" / "splunk"
    spool.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in spool.iterdir()}
    dispatch = splunk_home / "var" / "run" / "splunk" / "dispatch" / sid
    results_file = dispatch / "results.csv.gz"
    write_results(results_file, rows)
    configuration = {**action_defaults(addon, action), **(params or {})}
    payload = {
        "app": "TA-defender-lineage",
        "owner": owner,
        "search_name": search_name,
        "sid": sid,
        "server_uri": standin.uri,
        "server_host": "splunkd-standin",
        "session_key": standin.session_key,
        "results_file": str(results_file),
        "results_link": f"http://splunkd-standin:8000/app/search/search?sid={sid}",
        "search_uri": f"/servicesNS/{owner}/search/saved/searches/{search_name}",
        "configuration": substitute_result_tokens(configuration, rows),
    }
    script = addon / "bin" / f"{action}.py"
    returncode, out, err, _, _ = _run(
        [python, str(script), "--execute"],
        script.parent,
        _environment(splunk_home, standin, env),
        json.dumps(payload).encode("utf-8"),
        timeout,
        None,
    )
    new = [p for p in sorted(spool.iterdir()) if p.name not in before]
    events = [e for p in new for e in parse_stash(p.read_text(encoding="utf-8"))]
    log_dir = splunk_home / "var" / "log" / "splunk"
    log = "".join(p.read_text(errors="replace") for p in sorted(log_dir.glob(f"*{action}*.log")))
    return ActionResult(returncode, out.decode("utf-8", "replace"), err, events, log)
