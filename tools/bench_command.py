"""Throughput of defenderlineage, side by side with splunklib baselines, in one run (not a test).

Four commands stream the same alert events through the chunked protocol
(tests/harness/scp_driver.py), with the same chunk size, under the same interpreter, for two
workloads (issue 18):

* heavy: JSON ``_raw`` (~6 KB) plus the fields ``KV_MODE = json`` and the add-on's props give, plus the
  usual Splunk fields (~120 fields), in chunks of ``--chunk-size`` (1,000);
* light: a ~1.5 KB JSON ``_raw`` and 11 Splunk fields (no search-time extraction: the command reads
  ``_raw``), in ONE chunk of ``--light-records`` (50,000), splunkd's largest; the peak RSS of each
  command's process is measured against the chunk's size on the wire.

The commands:

  (a) a splunklib StreamingCommand that passes records through (no-op);
  (b) a splunklib StreamingCommand that adds the same 20 fields (13 lineage + 7 incident_*) with
      constant values;
  (c) ``defenderlineage incidents=false``;
  (d) ``defenderlineage`` (incidents=true) against the splunkd stand-in, whose KV store holds the
      incidents and alerts of the events as both inputs write them (11 documents per incident, the
      summary listing its alerts); its KV store requests are counted per chunk;
  (f) the floor of (d): ``bench_floor.py``, the command with the least reading of the store one
      thread of Python can do (the chunk's summaries fetched in the same batches while it is read,
      one row end per incident straight from its summary, none of the store's rules). Its replies
      must equal (d)'s on the bench's store, where no rule applies (checked); (f)/(c) is how close
      to (c) any (d) that keeps the rules can come on the command's one thread.

(a), (b) and (f) are written into ``bin/`` of a temporary copy of the built add-on (same ``lib/`` and
``import_declare_test``); output/ is never touched. Variants are interleaved over the repetitions and
the best run of each is reported (background load only ever adds time). ``--profile`` adds a
cProfile of (b) and (c), grouped by where the time goes.

    .venv/bin/python tools/bench_command.py [--python PATH] [--records N] [--light-records N] [--reps N]
        [--workload heavy|light|both] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401  # the profiled wrapper script uses it; imported here to fail early
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "package" / "bin"))
sys.path.insert(0, str(ROOT))

from defender_lineage_core.incident_store import (  # noqa: E402
    COLLECTION,
    INCIDENT_OUTPUT_FIELDS,
    docs_from_alert,
    docs_from_incident,
)
from defender_lineage_core.lineage import OUTPUT_FIELDS  # noqa: E402
from defender_lineage_core.store_batches import BATCH_SIZE  # noqa: E402
from tests.fixture_paths import SAMPLES  # noqa: E402
from tests.harness.pycache import bytecode_env  # noqa: E402
from tests.harness.scp_driver import csv_to_records, encode_chunk, getinfo_metadata, read_chunk, records_to_csv  # noqa: E402
from tests.harness.searchtime import extract, load_props  # noqa: E402
from tests.harness.splunkd_standin import SplunkdStandin  # noqa: E402

TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
ALERTS_PER_INCIDENT = 5  # consecutive alerts share an incident: every chunk names 200 new incidents
# A chunk naming more new keys than PREFETCH_BATCH is fetched in batches of that many keys while it
# is read, each batch two requests: the summaries, then the alert versions newer than them (a KV
# store query cannot compare one document with another: issue 18).
PREFETCH_BATCH = BATCH_SIZE
REQUESTS_PER_BATCH = 2
FIELDS = (*OUTPUT_FIELDS, *INCIDENT_OUTPUT_FIELDS)

NOOP = '''"""bench (a): a splunklib StreamingCommand that passes records through."""
import import_declare_test  # noqa: F401
import sys
from splunklib.searchcommands import Configuration, StreamingCommand, dispatch


@Configuration(distributed=False)
class NoopCommand(StreamingCommand):
    def stream(self, records):
        for record in records:
            yield record


dispatch(NoopCommand, sys.argv, sys.stdin, sys.stdout, __name__)
'''

CONSTANT = '''"""bench (b): a splunklib StreamingCommand that adds the same fields with constant values."""
import import_declare_test  # noqa: F401
import sys
from splunklib.searchcommands import Configuration, StreamingCommand, dispatch

FIELDS = {fields!r}
VALUES = {{name: ["a", "b"] if name.endswith("_sources") else "constant" for name in FIELDS}}


@Configuration(distributed=False)
class ConstantCommand(StreamingCommand):
    def stream(self, records):
        for record in records:
            for name, value in VALUES.items():
                self.add_field(record, name, value)
            yield record


dispatch(ConstantCommand, sys.argv, sys.stdin, sys.stdout, __name__)
'''

FLOOR = '''"""bench (f): the least ``defenderlineage incidents=true`` could do on one thread of Python.

The command's own placing and writing, and of the incident store only what reading it must cost
at the least: each chunk's incident keys go, BATCH_SIZE at a time, to a worker thread that asks the
KV store for their summaries (one request each, while the chunk is read on) and decodes them; once
the chunk is read, one row end per incident is made straight from its summary, and each row is its
start and its incident's end. None of the store's rules (the alert versions newer than a summary,
alerts that moved away, merges, hunting rows, values UTF-8 cannot encode): on the bench's store,
where none applies, its replies equal the command's (the bench checks it); anywhere else they would
be wrong. A floor to measure (d) against, not a command.
"""
import import_declare_test  # noqa: F401
import sys
from concurrent.futures import ThreadPoolExecutor

import defenderlineage as dl
from defender_lineage_core.incident_store import _NOT_A_PRODUCT, INCIDENT, Term, incident_key
from defender_lineage_kvstore import IncidentStoreClient
from defender_lineage_scp import binary_streams, csv_cell

BATCH = BATCH_SIZE


def row_end(summary):
    ids = set(summary.get("alert_ids") or ()) - {""}
    services = tuple(sorted(set(summary.get("alert_service_sources") or ()) - {""}))
    detections = tuple(sorted(set(summary.get("alert_detection_sources") or ()) - {""}))
    cells = (
        "", csv_cell(summary.get("title") or ""),
        "", csv_cell(summary.get("severity") or ""),
        "", csv_cell(summary.get("status") or ""),
        "", str(len(ids)),
        "", dl._multivalue_cells(services), dl._multivalue_cells(detections),
        "true" if len(set(services) - _NOT_A_PRODUCT) > 1 else "false",
        "\\r\\n",
    )
    return ",".join(cells).encode("utf-8")


class Floor(dl.DefenderLineage):
    def _enriched(self, chunk, layout, body, cache):
        info = self.session.searchinfo
        find = IncidentStoreClient(str(info.get("session_key")), str(info.get("splunkd_uri"))).find
        pool = ThreadPoolExecutor(max_workers=1)
        starts, pairs, asked, batch, answers = [], [], set(), [], []
        head, add_start, add_pair = layout.head, starts.append, pairs.append
        for kept, fields in self._placed(chunk, layout, body):
            add_start(head(kept, fields).encode("utf-8"))
            pair = (fields["tenant_id"], fields["incident_id"])
            add_pair(pair)
            if pair not in asked:
                asked.add(pair)
                batch.append(incident_key(*pair))
                if len(batch) == BATCH:
                    answers.append(pool.submit(find, [Term(tuple(batch), doc_type=INCIDENT)]))
                    batch = []
        if batch:
            answers.append(pool.submit(find, [Term(tuple(batch), doc_type=INCIDENT)]))
        ends = {}
        for answer in answers:
            for summary in answer.result():
                ends[(summary["tenant_id"], summary["incident_id"])] = row_end(summary)
        pool.shutdown()
        parts, empty, size = body.parts, dl._EMPTY_ROW_END, 0
        for start, pair in zip(starts, pairs):
            end = ends.get(pair, empty)
            parts.append(start)
            parts.append(end)
            size += len(start) + len(end)
        body.size += size
        body.rows += len(starts)


dl.DefenderLineage = Floor
sys.exit(dl.run(*binary_streams()))
'''

PROFILED = '''"""Runs another command script of this bin/ under cProfile ($BENCH_PROFILE_SCRIPT, $BENCH_PROFILE_OUT)."""
import cProfile
import os
import runpy
import sys

script, output = os.environ["BENCH_PROFILE_SCRIPT"], os.environ["BENCH_PROFILE_OUT"]
sys.argv[0] = script
cProfile.run("runpy.run_path(script, run_name='__main__')", output)
'''


def default_python() -> str:
    found = subprocess.run(
        [str(ROOT / "tools" / "find_python.sh"), "3.9"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return os.environ.get("PY39") or found or sys.executable


def make_alerts(count: int) -> List[Dict[str, Any]]:
    template = json.loads((SAMPLES / "alert_v2.json").read_text(encoding="utf-8"))
    services = (
        ("microsoftDefenderForEndpoint", "antivirus"),
        ("microsoftDefenderForEndpoint", "microsoftDefenderForEndpoint"),
        ("microsoftDefenderForOffice365", "microsoftDefenderForOffice365"),
        ("microsoftDefenderForIdentity", "microsoftDefenderForIdentity"),
        ("microsoftDefenderForCloudApps", "cloudAppSecurity"),
    )
    alerts = []
    for n in range(count):
        item = json.loads(json.dumps(template))
        item["id"] = f"da6389{n:014d}_-1284567890"
        item["providerAlertId"] = f"6389{n:014d}_-1284567890"
        item["incidentId"] = str(40000 + n // ALERTS_PER_INCIDENT)
        item["serviceSource"], item["detectionSource"] = services[n % len(services)]
        item["lastUpdateDateTime"] = f"2026-09-14T09:{(n // 60) % 60:02d}:{n % 60:02d}.{n % 10_000_000:07d}Z"
        alerts.append(item)
    return alerts


def splunk_records(alerts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Events as splunkd sends them to a streaming command after KV_MODE=json and props."""
    props = load_props(ROOT / "package" / "default" / "props.conf")
    records = []
    for n, item in enumerate(alerts):
        raw = json.dumps(item, ensure_ascii=False, separators=(",", ":"))  # as the input writes it
        record: Dict[str, Any] = {
            "_raw": raw,
            "_time": str(1789374097 + n),
            "host": "sh1.contoso.com",
            "index": "defender",
            "source": f"ms_graph://{TENANT}/security/alerts_v2",
            "sourcetype": "ms:defender:graph:alert",
            "splunk_server": "idx1.contoso.com",
            "linecount": "1",
        }
        for name, values in extract(props, "ms:defender:graph:alert", raw).items():
            record[name] = values[0] if len(values) == 1 else values
        records.append(record)
    return records


LIGHT_RAW_BYTES = 1536
LIGHT_KEYS = ("id", "incidentId", "tenantId", "serviceSource", "detectionSource", "severity", "status", "title")


def light_records(alerts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The light workload: a ~1.5 KB ``_raw`` and 11 Splunk fields, nothing extracted at search time."""
    records = []
    for n, item in enumerate(alerts):
        small = {k: item[k] for k in LIGHT_KEYS if k in item}
        small["description"] = ""
        room = LIGHT_RAW_BYTES - len(json.dumps(small, separators=(",", ":")))
        small["description"] = (str(item.get("description", "")) + " Isolate the device." * 80)[: max(0, room)]
        raw = json.dumps(small, separators=(",", ":"))
        records.append(
            {
                "_raw": raw,
                "_time": str(1789374097 + n),
                "_cd": f"12:{n}",
                "_bkt": "defender~12~4A1F0C2E",
                "_serial": str(n),
                "host": "sh1.contoso.com",
                "index": "defender",
                "source": f"ms_graph://{TENANT}/security/alerts_v2",
                "sourcetype": "ms:defender:graph:alert",
                "splunk_server": "idx1.contoso.com",
                "linecount": "1",
            }
        )
    return records


def store_docs(alerts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The store as both inputs write it: the incidents input's summaries (alerts expanded, so they
    list them) and its alert documents, and the alerts input's alert documents, all older than the
    summaries: 11 documents per incident, of which the command needs the summary only."""
    docs: List[Dict[str, Any]] = []
    by_incident: Dict[str, List[Dict[str, Any]]] = {}
    for item in alerts:
        by_incident.setdefault(item["incidentId"], []).append(item)
    for incident_id, members in sorted(by_incident.items()):
        item = {
            "id": incident_id,
            "tenantId": TENANT,
            "displayName": f"Multi-stage incident {incident_id}",
            "severity": "high",
            "status": "active",
            "lastUpdateDateTime": "2026-09-14T10:00:00Z",
            "alerts": members,
        }
        docs += docs_from_incident(item, TENANT)
    for item in alerts:
        docs += docs_from_alert(item, TENANT)
    return docs


def prepare_addon(addon: Path, workdir: Path) -> Path:
    copy = workdir / addon.name
    shutil.copytree(addon, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (copy / "bin" / "bench_noop.py").write_text(NOOP, encoding="utf-8")
    (copy / "bin" / "bench_constant.py").write_text(CONSTANT.format(fields=FIELDS), encoding="utf-8")
    (copy / "bin" / "bench_profiled.py").write_text(PROFILED, encoding="utf-8")
    (copy / "bin" / "bench_floor.py").write_text(FLOOR.replace("BATCH_SIZE", str(BATCH_SIZE)), encoding="utf-8")
    return copy


class Variant:
    def __init__(self, key: str, label: str, script: str, args: List[str], standin: Optional[Path] = None):
        # standin: the state directory of the splunkd stand-in this variant's searches talk to (the
        # tenants lookup for (c) and (d), as every defenderlineage search reads it; the incident store for (d))
        self.key, self.label, self.script, self.args, self.standin = key, label, script, args, standin
        self.stream_seconds: List[float] = []
        self.total_seconds: List[float] = []
        self.kv_per_chunk: List[float] = []
        self.kv_seconds: List[float] = []  # time the command waited for the KV store (its metric, blocked)
        self.peak_rss: List[int] = []  # bytes, the command process's peak resident set
        self.kv_docs_read: List[int] = []  # documents the command received (its metric)
        self.kv_docs_in_store = 0
        self.last_reply: List[Dict[str, Any]] = []  # (d) and (f): the records of the last reply, once


class Run:
    """One search: the command's process, getinfo, then every pre-encoded chunk, in lockstep as splunkd
    does. Timed from the first execute chunk to the last reply (``stream``) and from process start
    (``total``). Replies are read but not decoded, except the last, to check the fields."""

    def __init__(self, addon: Path, python: str, script: str, env: Optional[Dict[str, str]] = None) -> None:
        self.addon, self.python, self.script, self.env = addon, python, script, env or {}
        self.metrics: Dict[str, Any] = {}  # the latest value of each inspector metric the command sent
        self.peak_rss = 0  # bytes (ru_maxrss of the process, from wait4)

    def __call__(
        self, bodies: List[bytes], args: List[str], splunkd_uri: str = "http://127.0.0.1:1", session_key: str = "x"
    ) -> Tuple[float, float, List[Dict[str, Any]]]:
        bin_dir = self.addon / "bin"
        with tempfile.TemporaryDirectory(prefix="bench_run_") as home:
            os.makedirs(os.path.join(home, "dispatch"))
            env = dict(os.environ, SPLUNK_HOME=home, **bytecode_env(), **self.env)
            with open(os.path.join(home, "stderr"), "w+b") as stderr:
                started = time.perf_counter()
                proc = subprocess.Popen(
                    [self.python, str(bin_dir / self.script)],
                    cwd=str(bin_dir),
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
                assert proc.stdin is not None and proc.stdout is not None
                info = getinfo_metadata(args, os.path.join(home, "dispatch"), splunkd_uri, session_key, "bench")
                last: Optional[Tuple[Dict[str, Any], bytes]] = self._exchange(proc, info, b"")
                streaming = time.perf_counter()
                for n, body in enumerate(bodies):
                    meta = {"action": "execute", "finished": n == len(bodies) - 1}
                    last = self._exchange(proc, meta, body)
                done = time.perf_counter()
                self.peak_rss = peak_rss(proc.pid)  # while it waits for more: its whole life so far
                proc.stdin.close()
                proc.wait(30)
                stderr.seek(0)
                if proc.returncode != 0 or last is None:
                    raise SystemExit(f"{self.script} {args} failed: {stderr.read().decode('utf-8', 'replace')[-2000:]}")
        assert last is not None
        return done - streaming, done - started, csv_to_records(last[1])

    def _exchange(self, proc: subprocess.Popen, meta: Dict[str, Any], body: bytes) -> Tuple[Dict[str, Any], bytes]:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(encode_chunk(meta, body))
        proc.stdin.flush()
        reply = read_chunk(proc.stdout)
        if reply is None:
            raise SystemExit("the command closed its output")
        inspector = reply[0].get("inspector") or {}
        self.metrics.update((k, v) for k, v in inspector.items() if k.startswith("metric."))
        errors = [m for m in inspector.get("messages", []) if m and m[0] in ("ERROR", "FATAL")]
        if errors:
            raise SystemExit(f"the command failed: {errors}")
        return reply


def peak_rss(pid: int) -> int:
    """The process's peak resident set in bytes (Linux ``VmHWM``; 0 where /proc has none). Not
    ``wait4``'s ru_maxrss: that counts the forked bench process's pages from before ``exec``."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_once(variant: Variant, addon: Path, python: str, bodies: List[bytes]) -> None:
    run = Run(addon, python, variant.script)
    if variant.standin is None:
        stream, total, last = run(bodies, variant.args)
    else:
        # The stand-in answers from a process of its own, started for this run: in the bench's
        # process it shared a GIL with the thread writing the chunk to the command, and held back
        # every 64 KB of the pipe while it served a request. splunkd feeds the command and answers
        # its KV store without such a lock (tools/bench.py's standin_process, as the backfill bench).
        from tools.bench import standin_process

        with standin_process(variant.standin) as standin:
            info = standin.info
            stream, total, last = run(bodies, variant.args, splunkd_uri=info.uri, session_key=info.session_key)
        if standin.served.get("unknown") or standin.served.get("errors"):
            raise SystemExit(f"{variant.label}: the splunkd stand-in saw {standin.served}")
    if variant.key in ("b", "c", "d", "f") and (not last or any(f not in last[-1] for f in FIELDS)):
        raise SystemExit(f"{variant.label}: fields missing from the output")
    if variant.key in ("d", "f") and not variant.last_reply:
        variant.last_reply = last
    if variant.key == "d":
        paths = standin.served.get("paths") or {}
        kv = sum(n for path, n in paths.items() if f"storage/collections/data/{COLLECTION}" in path)
        variant.kv_per_chunk.append(kv / max(1, len(bodies)))
        waited = run.metrics.get("metric.incident_store") or [0.0]
        variant.kv_seconds.append(float(waited[0]))
        variant.kv_docs_read.append(int(waited[3]) if len(waited) > 3 else 0)
        if not last[-1].get("incident_title"):
            raise SystemExit("(d) did not enrich: is the stand-in seeded?")
    variant.stream_seconds.append(stream)
    variant.total_seconds.append(total)
    variant.peak_rss.append(run.peak_rss)


def profile(addon: Path, python: str, bodies: List[bytes], script: str, args: List[str]) -> str:
    import pstats

    with tempfile.NamedTemporaryFile(suffix=".prof", delete=False) as handle:
        out = handle.name
    env = {"BENCH_PROFILE_SCRIPT": script, "BENCH_PROFILE_OUT": out}
    Run(addon, python, "bench_profiled.py", env)(bodies, args)
    stats = pstats.Stats(out)
    groups: Dict[str, float] = {}
    total = 0.0
    raw_stats: Dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, func), (_cc, _nc, tottime, _ct, _callers) in raw_stats.items():
        total += tottime
        groups[_group(filename, func)] = groups.get(_group(filename, func), 0.0) + tottime
    os.unlink(out)
    lines = [f"{script} {' '.join(args)}: {total:.2f} s in all (own time of each function, grouped)"]
    for group, seconds in sorted(groups.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"  {seconds / total * 100:5.1f}%  {seconds:6.2f} s  {group}")
    return "\n".join(lines)


def _group(filename: str, func: str) -> str:
    if "splunklib" in filename:
        return f"splunklib {Path(filename).name}:{func}"
    if "defender_lineage_core" in filename:
        return f"defender_lineage_core.{Path(filename).stem}"
    if filename == "~":
        return f"builtin {func}"
    return f"{Path(filename).name}:{func}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addon", type=Path, default=ROOT / "output" / "TA-defender-lineage")
    parser.add_argument("--python", default=default_python())
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--light-records", type=int, default=50_000, help="the light workload's one chunk")
    parser.add_argument("--workload", choices=("heavy", "light", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="also profile (b) and (c)")
    opts = parser.parse_args()
    if not (opts.addon / "bin" / "defenderlineage.py").exists():
        print(f"{opts.addon} is not built: run make build", file=sys.stderr)
        return 2
    if not (SAMPLES / "alert_v2.json").exists():
        print(f"sample {SAMPLES / 'alert_v2.json'} not found", file=sys.stderr)
        return 2
    version = subprocess.run(
        [opts.python, "-c", "import platform;print(platform.python_version())"], capture_output=True, text=True
    ).stdout.strip()
    if not version:
        print(f"interpreter {opts.python} does not run", file=sys.stderr)
        return 2

    started = time.monotonic()
    sections = []
    if opts.workload in ("heavy", "both"):
        alerts = make_alerts(opts.records)
        sections.append(bench_workload("heavy", opts, version, alerts, splunk_records(alerts), opts.chunk_size))
    if opts.workload in ("light", "both"):
        alerts = make_alerts(opts.light_records)
        sections.append(bench_workload("light", opts, version, alerts, light_records(alerts), opts.light_records))
    print("\n\n".join(sections) + f"\n\nThe bench took {time.monotonic() - started:.0f} s.")
    return 0


def bench_workload(
    name: str,
    opts: argparse.Namespace,
    version: str,
    alerts: List[Dict[str, Any]],
    records: List[Dict[str, Any]],
    chunk_size: int,
) -> str:
    bodies = [records_to_csv(records[i : i + chunk_size]) for i in range(0, len(records), chunk_size)]
    raw_kb = statistics.mean(len(r["_raw"]) for r in records) / 1024
    field_count = statistics.mean(len(r) for r in records)
    with tempfile.TemporaryDirectory(prefix="bench_command_") as work:
        state = Path(work) / "splunkd"
        setup = SplunkdStandin(state)  # the stand-in's state, served to (d) from a process of its own
        addon = prepare_addon(opts.addon, Path(work))
        setup.load_app_defaults(addon)
        docs = store_docs(alerts)
        setup.kv_save(COLLECTION, docs)
        setup.close()
        variants = [
            Variant("a", "(a) splunklib no-op StreamingCommand", "bench_noop.py", []),
            Variant("b", f"(b) splunklib, adds the {len(FIELDS)} fields as constants", "bench_constant.py", []),
            Variant("c", "(c) defenderlineage incidents=false", "defenderlineage.py", ["incidents=false"], state),
            Variant("d", "(d) defenderlineage incidents=true (KV store)", "defenderlineage.py", [], state),
            Variant("f", "(f) floor of (d): its store reading without the store's rules", "bench_floor.py", [], state),
        ]
        variants[3].kv_docs_in_store = len(docs)
        startup = Variant("e", "empty search", "defenderlineage.py", ["incidents=false"])
        run_once(startup, addon, opts.python, bodies[:1])  # warm the file cache
        startup.stream_seconds.clear()
        startup.total_seconds.clear()
        for _ in range(opts.reps):
            for variant in variants:
                run_once(variant, addon, opts.python, bodies)
        if variants[4].last_reply != variants[3].last_reply:
            raise SystemExit("(f) and (d) replied differently: the floor is not a floor of (d) on this store")
        for _ in range(3):
            run_once(startup, addon, opts.python, [])
        profiles = []
        if opts.profile:
            profiles.append(profile(addon, opts.python, bodies, "bench_constant.py", []))
            profiles.append(profile(addon, opts.python, bodies, "defenderlineage.py", ["incidents=false"]))
    wire = max(len(b) for b in bodies)
    workload = Workload(name, len(records), raw_kb, field_count, chunk_size, wire)
    return report(opts, version, workload, variants, startup, profiles)


class Workload:
    def __init__(self, name: str, count: int, raw_kb: float, field_count: float, chunk_size: int, wire: int) -> None:
        self.name, self.count, self.raw_kb, self.field_count = name, count, raw_kb, field_count
        self.chunk_size, self.wire = chunk_size, wire


def report(
    opts: argparse.Namespace, version: str, w: Workload, variants: List[Variant], startup: Variant, profiles: List[str]
) -> str:
    count, chunk_size = w.count, w.chunk_size
    best = {v.key: min(range(len(v.stream_seconds)), key=v.stream_seconds.__getitem__) for v in variants}
    rate = {v.key: count / v.stream_seconds[best[v.key]] for v in variants}
    whole = {v.key: count / min(v.total_seconds) for v in variants}
    d = variants[3]
    kv_seconds = d.kv_seconds[best["d"]]
    rate["d-kv"] = count / max(1e-9, d.stream_seconds[best["d"]] - kv_seconds)
    chunks = (count + chunk_size - 1) // chunk_size
    requests = round(max(d.kv_per_chunk) * chunks)
    new_keys = chunk_size // ALERTS_PER_INCIDENT  # incidents each chunk names for the first time
    allowed_requests = chunks * max(1, -(-new_keys // PREFETCH_BATCH)) * REQUESTS_PER_BATCH
    title = f"### defenderlineage throughput, {w.name} workload ({time.strftime('%Y-%m-%d')}, `tools/bench_command.py`)"
    out = [title, ""]
    given = (
        f"plus the {w.field_count:.0f} fields `KV_MODE = json`, the add-on's props and Splunk give them"
        if w.name == "heavy"
        else f"and {w.field_count:.0f} Splunk fields, nothing extracted at search time"
    )
    out.append(
        f"{count} alert events (`ms:defender:graph:alert`: JSON `_raw` of {w.raw_kb:.1f} KB on average {given}) "
        f"in chunks of {chunk_size} ({w.wire / 2**20:.1f} MB on the wire each), through the chunked protocol, "
        f"Python {version} ({platform.machine()}), best of "
        f"{opts.reps} interleaved runs. records/s counts from the first chunk sent to the last reply read; the "
        f"last column is the whole search (process start and getinfo included; an empty search takes "
        f"{min(startup.total_seconds):.2f} s). (d) reads the splunkd stand-in's KV store on loopback, and every "
        f"chunk names {chunk_size // ALERTS_PER_INCIDENT} incidents not fetched before (the worst case for "
        f"the cache); (c) and (d) both read the tenants lookup (`tenant_name`) from the stand-in, as every "
        f"search of the command does."
    )
    out += [
        "",
        "| command | records/s | vs (a) no-op | vs (b) constant fields | KV requests per chunk "
        "| whole search, records/s | peak RSS, MB (÷ chunk on the wire) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rss = {v.key: max(v.peak_rss) for v in variants}
    rows = [(v.key, v.label, f"{max(v.kv_per_chunk):.2f}" if v.kv_per_chunk else "-") for v in variants]
    rows.append(("d-kv", "(d) less the time it waited for the KV store", f"{max(d.kv_per_chunk):.2f}"))
    for key, label, kv in rows:
        total = f"{whole[key]:,.0f}" if key in whole else "-"
        ratios = f"{rate[key] / rate['a']:.2f} | {rate[key] / rate['b']:.2f}"
        peak = f"{rss[key] / 2**20:,.0f} ({rss[key] / w.wire:.1f}×)" if key in rss else "-"
        out.append(f"| {label} | {rate[key]:,.0f} | {ratios} | {kv} | {total} | {peak} |")
    out += [
        "",
        f"In (d) the command made {requests} KV store requests per run and waited {kv_seconds:.2f} s for "
        "them (its own `metric.incident_store` in the job inspector: the time it could do nothing else, at a "
        "chunk's end; the requests of a chunk naming more than "
        f"{PREFETCH_BATCH:,} new keys run {PREFETCH_BATCH:,} keys at a time while it is read, beside the placing). "
        "The stand-in answers from SQLite on loopback, pre-selecting rows by incident_key and alert_key as "
        "splunkd's KV store uses the collection's accelerated fields, in a process of its own on the same "
        "cores. The last row takes the wait out, to show the command's own cost. "
        f"The store holds what both inputs write: {d.kv_docs_in_store:,} documents, 11 per incident (the incidents "
        "input's summary listing its alerts, its own and the alerts input's alert documents, older than the "
        f"summary); the command received {d.kv_docs_read[best['d']]:,} of them per run.",
    ]
    goals = [
        ("(c) within 10% of the constant-fields command: (c)/(b) >= 0.90", rate["c"] / rate["b"] >= 0.90),
        ("(c) within 30% of the no-op: (c)/(a) >= 0.70", rate["c"] / rate["a"] >= 0.70),
        ("(d) within 10% of the constant-fields command: (d)/(b) >= 0.90", rate["d"] / rate["b"] >= 0.90),
        ("the same, the wait for the KV store excluded", rate["d-kv"] / rate["b"] >= 0.90),
        (
            f"(d) at most two KV store requests per chunk (summaries, then alerts newer than them), or per "
            f"{PREFETCH_BATCH:,} new keys in a bigger one",
            requests <= allowed_requests,
        ),
        ("(c) at or above the splunklib no-op: (c)/(a) >= 1.0 (issue 18)", rate["c"] / rate["a"] >= 1.0),
        ("(d) within 10% of (c): (d)/(c) >= 0.90 (issue 18)", rate["d"] / rate["c"] >= 0.90),
    ]
    if w.chunk_size >= 50_000:
        goals.append(("(c) peak RSS at most 2× the chunk on the wire (issue 18)", rss["c"] <= 2 * w.wire))
    out += ["", "Goals (issues 4 and 18):", ""]
    out += [f"- {'met' if met else '**missed**'}: {w.name} workload, {text}" for text, met in goals]
    floor = rate["f"] / rate["c"]
    beyond = count / rate["d"] - count / rate["f"]
    out += [
        "",
        f"The floor: (f)/(c) = **{floor:.2f}**. (f) is the command with the least reading of the store one "
        "thread of Python can do (`bench_floor.py`: the summaries fetched in the same batches while the chunk "
        "is read, one row end per incident made straight from its summary, none of the store's rules), and "
        "its replies equal (d)'s on this store (checked). A (d) that keeps the rules does all (f) does and "
        "more, so on the command's one thread (d)/(c) stays at or below (f)/(c), within the run-to-run spread; "
        f"(d) took {beyond:.2f} s more than (f) on this workload.",
    ]
    spread = ", ".join(f"({v.key}) {min(v.stream_seconds):.2f}-{max(v.stream_seconds):.2f}" for v in variants)
    out += ["", f"Streaming time per run (min-max, s): {spread}."]
    if profiles:
        out += ["", "Where the time goes (cProfile, one run each, own time per function group):", "", "```"]
        out += profiles
        out.append("```")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
