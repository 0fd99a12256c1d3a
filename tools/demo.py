"""`make demo`: the add-on's main job end to end on the bundled Graph simulator.

Starts the Graph simulator and the splunkd stand-in on loopback, runs the BUILT defender_alerts
and defender_incidents inputs as splunkd would, gives their events the search-time fields of the
shipped props.conf, pipes them through the BUILT defenderlineage command over the chunked
protocol, and prints the blog's search as a table plus a sample of lineage-enriched events.
Exits non-zero when any step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant  # noqa: E402
from tests.harness.pipeline import (  # noqa: E402
    events_to_records,
    install_app,
    run_input,
    seed_account,
    stats_values_by,
    values_of,
)
from tests.harness.scp_driver import run_command  # noqa: E402
from tests.harness.splunkd_standin import SplunkdStandin  # noqa: E402

BLOG_SPL = """index=main sourcetype="ms*"
| stats values(source) as source, values(serviceSource) AS serviceSource,
        values(detectionSource) AS detectionSource by index, sourcetype"""


def fail(message: str) -> int:
    print(f"\nDEMO FAILED: {message}", file=sys.stderr)
    return 1


def table(rows: list[dict[str, list[str]]], columns: list[str], width: int = 70) -> str:
    """A Splunk-style results table: multivalue cells stacked one value per line."""
    cells = [[[v[:width] for v in row.get(c, [])] or [""] for c in columns] for row in rows]
    widths = [max([len(c)] + [len(v) for r in cells for v in r[i]]) for i, c in enumerate(columns)]
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)), "  ".join("-" * w for w in widths)]
    for r in cells:
        for n in range(max(len(cell) for cell in r)):
            out.append("  ".join((cell[n] if n < len(cell) else "").ljust(w) for cell, w in zip(r, widths)).rstrip())
        out.append("")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addon", type=Path, required=True)
    parser.add_argument("--python", required=True, help="interpreter that runs the add-on (Splunk's python3)")
    args = parser.parse_args()
    addon = args.addon.resolve()
    started = time.monotonic()
    print(f"TA-defender-lineage demo: built add-on {addon.relative_to(ROOT)}, add-on interpreter {args.python}\n")
    with tempfile.TemporaryDirectory(prefix="tadl-demo-") as tmp:
        work = Path(tmp)
        tenant = SyntheticTenant.generate(seed=7)
        with contextlib.ExitStack() as servers:
            sim = servers.enter_context(GraphSimulator(tenant, max_lifetime=600.0))
            sd = servers.enter_context(SplunkdStandin(work / "splunkd", max_lifetime=600.0))
            print(f"[1/4] Graph simulator on {sim.base_url} (tenant {sim.tenant_id}); splunkd stand-in on {sd.uri}")
            install_app(sd, addon)
            seed_account(sd, sim, "demo_tenant")
            sd.set_conf("ta_defender_lineage_settings", "logging", {"loglevel": "INFO"})
            events = []
            for input_type, params in (
                ("defender_alerts", {"account": "demo_tenant"}),
                ("defender_incidents", {"account": "demo_tenant", "expand_alerts": "1"}),
            ):
                result = run_input(sd, work, input_type, "demo", params, args.python, addon=addon)
                if result.returncode != 0 or not result.events:
                    print(result.stderr[-2000:], file=sys.stderr)
                    return fail(f"{input_type} exited {result.returncode} with {len(result.events)} events")
                print(f"[2/4] {input_type}://demo wrote {len(result.events)} events ({result.events[0].sourcetype})")
                events.extend(result.events)
            if sd.unknown_calls:
                return fail(f"the add-on called splunkd endpoints the stand-in does not know: {sd.unknown_calls}")
            log_dir = work / "splunk_home" / "var" / "log" / "splunk"
            summaries = [
                line.split("|", 1)[-1].strip()
                for f in sorted(log_dir.glob("ta_defender_lineage_*.log"))
                for line in f.read_text().splitlines()
                if "run_summary" in line
            ]
            for line in summaries:
                print(f"      log: {line[:200]}")

            records = events_to_records(events, addon)
            print("\n[3/4] The blog's search over the collected events:\n")
            print("    " + BLOG_SPL.replace("\n", "\n    ") + "\n")
            rows = stats_values_by(records, ["source", "serviceSource", "detectionSource"], ["index", "sourcetype"])
            print(table(rows, ["index", "sourcetype", "source", "serviceSource", "detectionSource"]))
            services = {v for r in records for v in values_of(r, "serviceSource")}
            detections = {v for r in records for v in values_of(r, "detectionSource")}
            sourcetypes = {r["sourcetype"] for r in records}
            print(
                f"\n    {len(sourcetypes)} sourcetypes, {len(services)} distinct serviceSource, "
                f"{len(detections)} distinct detectionSource"
            )

            lineage = run_command(addon, args.python, records, splunkd_uri=sd.uri, session_key=sd.session_key)
            if lineage.error or lineage.returncode not in (0, None) or len(lineage.records) != len(records):
                print(lineage.stderr[-2000:], file=sys.stderr)
                return fail(
                    f"defenderlineage: error={lineage.error!r} returncode={lineage.returncode} "
                    f"records {len(lineage.records)}/{len(records)}"
                )
            print(
                f"\n[4/4] | defenderlineage  ({len(lineage.records)} events in {lineage.chunks_sent} chunks, "
                f"{lineage.seconds:.2f} s)\n"
            )
            enriched = lineage.records
            sample = _sample(enriched)
            columns = [
                "lineage_layer",
                "incident_id",
                "incident_id_original",
                "service_source",
                "detection_source",
                "incident_severity",
                "incident_status",
                "incident_alert_count",
                "incident_cross_product",
            ]
            print(table([{c: values_of(r, c) for c in columns} for r in sample], columns, width=40))
            print("    lineage_path and incident_title of each:")
            for r in sample:
                print(f"      {r.get('lineage_path')}")
                print(f"          {r.get('incident_title') or '(no incident)'}")
            layers = sorted({str(r.get("lineage_layer")) for r in enriched})
            warned = sum(1 for r in enriched if r.get("lineage_warning"))
            print(f"\n    layers: {', '.join(layers)}; events with lineage_warning: {warned}")

            problems = []
            if sourcetypes != {"ms:defender:graph:alert", "ms:defender:graph:incident"}:
                problems.append(f"sourcetypes {sorted(sourcetypes)}")
            if len(services) < 6:
                problems.append(f"only {len(services)} serviceSource values")
            if len(detections) < 8:
                problems.append(f"only {len(detections)} detectionSource values")
            if not all(r.get("lineage_path") for r in enriched):
                problems.append("events without lineage_path")
            if not any(r.get("incident_title") for r in enriched if r.get("lineage_layer") == "detection"):
                problems.append("no alert was enriched from the incident store")
            if problems:
                return fail("; ".join(problems))
    print(f"\nDemo OK in {time.monotonic() - started:.1f} s.")
    return 0


def _sample(records: list) -> list:
    """One event of each interesting kind: cross-product and merged incidents, alerts in and out of incidents."""
    picks = [
        lambda r: r.get("lineage_layer") == "incident" and str(r.get("lineage_path", "")).count("|") >= 2,
        lambda r: bool(r.get("incident_id_original")),
        lambda r: r.get("lineage_layer") == "detection" and r.get("incident_id"),
        lambda r: r.get("lineage_layer") == "detection" and r.get("service_source") == "microsoftDefenderForCloud",
        lambda r: r.get("lineage_layer") == "detection" and not r.get("incident_id"),
    ]
    chosen: list = []
    for pick in picks:
        match = next((r for r in records if pick(r) and r not in chosen), None)
        if match is not None:
            chosen.append(match)
    return chosen


if __name__ == "__main__":
    sys.exit(main())
