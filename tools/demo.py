"""`make demo`: the add-on's main job end to end on the bundled Graph simulator.

Starts the Graph simulator and the splunkd stand-in on loopback, runs the three BUILT inputs
(defender_alerts, defender_incidents, and defender_hunting with an AlertInfo query) as splunkd
would, gives their events the search-time fields of the shipped props.conf, pipes them through the
BUILT defenderlineage command over the chunked protocol, and prints the blog's search plus a sample
of lineage-enriched events from the three layers (hunting, detection, incident). Every line fits
120 columns (tools/demo_layout.py). Exits non-zero when any step fails.
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
    log_lines,
    run_input,
    seed_account,
    stats_values_by,
    values_of,
)
from tests.harness.scp_driver import run_command  # noqa: E402
from tests.harness.splunkd_standin import SplunkdStandin  # noqa: E402
from tools.demo_layout import WIDTH, table, values_blocks, wrap_fields, wrap_path, wrap_tokens  # noqa: E402

BLOG_SPL = """index=main sourcetype="ms*"
| stats values(source) as source, values(serviceSource) AS serviceSource,
        values(detectionSource) AS detectionSource by index, sourcetype"""


def fail(message: str) -> int:
    print(f"\nDEMO FAILED: {message}", file=sys.stderr)
    return 1


SOURCETYPES = {"ms:defender:graph:alert", "ms:defender:graph:incident", "ms:defender:graph:hunting"}
LAYERS = {"hunting", "detection", "incident"}
# The three inputs as an admin would configure them; the hunting query's rows carry the alerts' ids.
INPUTS = (
    ("defender_alerts", {"account": "demo_tenant"}),
    ("defender_incidents", {"account": "demo_tenant", "expand_alerts": "1"}),
    ("defender_hunting", {"account": "demo_tenant", "query": "AlertInfo", "lookback": "P7D"}),
)
LOG_INDENT = " " * 11


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addon", type=Path, required=True)
    parser.add_argument("--python", required=True, help="interpreter that runs the add-on (Splunk's python3)")
    args = parser.parse_args()
    addon = args.addon.resolve()
    started = time.monotonic()
    print("TA-defender-lineage demo")
    print(f"    built add-on: {addon.relative_to(ROOT) if addon.is_relative_to(ROOT) else addon}")
    print(f"    add-on interpreter: {args.python}\n")
    with tempfile.TemporaryDirectory(prefix="tadl-demo-") as tmp:
        work = Path(tmp)
        tenant = SyntheticTenant.generate(seed=7)
        with contextlib.ExitStack() as servers:
            sim = servers.enter_context(GraphSimulator(tenant, max_lifetime=600.0))
            sd = servers.enter_context(SplunkdStandin(work / "splunkd", max_lifetime=600.0))
            print(f"[1/4] Graph simulator on {sim.base_url} (tenant {sim.tenant_id})")
            print(f"      splunkd stand-in on {sd.uri}")
            install_app(sd, addon)
            seed_account(sd, sim, "demo_tenant")
            sd.set_conf("ta_defender_lineage_settings", "logging", {"loglevel": "INFO"})
            events = []
            for input_type, params in INPUTS:
                result = run_input(sd, work, input_type, "demo", params, args.python, addon=addon)
                if result.returncode != 0 or not result.events:
                    print(result.stderr[-2000:], file=sys.stderr)
                    return fail(f"{input_type} exited {result.returncode} with {len(result.events)} events")
                print(f"[2/4] {input_type}://demo wrote {len(result.events)} events ({result.events[0].sourcetype})")
                events.extend(result.events)
            if sd.unknown_calls:
                return fail(f"the add-on called splunkd endpoints the stand-in does not know: {sd.unknown_calls}")
            summaries = [line.split("|", 1)[-1].strip() for line in log_lines(work) if "run_summary" in line]
            for line in summaries:
                for n, part in enumerate(wrap_fields(line, WIDTH - len(LOG_INDENT), "  ")):
                    print(("      log: " if n == 0 else LOG_INDENT) + part)

            records = events_to_records(events, addon)
            print("\n[3/4] The blog's search over the collected events:\n")
            print("    " + BLOG_SPL.replace("\n", "\n    ") + "\n")
            rows = stats_values_by(records, ["source", "serviceSource", "detectionSource"], ["index", "sourcetype"])
            print(values_blocks(rows, ["index", "sourcetype"], ["source", "serviceSource", "detectionSource"]))
            services = {v for r in records for v in values_of(r, "serviceSource")}
            detections = {v for r in records for v in values_of(r, "detectionSource")}
            sourcetypes = {str(r["sourcetype"]) for r in records}
            print(
                f"    {len(sourcetypes)} sourcetypes, {len(services)} distinct serviceSource, "
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
                "#",
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
            shown = [{"#": [str(n)], **{c: values_of(r, c) for c in columns[1:]}} for n, r in enumerate(sample, 1)]
            print(table(shown, columns, keys=2))
            print("    lineage_path and incident_title of each:")
            for n, r in enumerate(sample, 1):
                for line in wrap_path(str(r.get("lineage_path")), WIDTH - 8, "  "):
                    print(f"    {n:>2}  {line}" if line == line.lstrip() else f"        {line}")
                title = str(r.get("incident_title") or "(no incident)")
                for line in wrap_tokens(title.split(), WIDTH - 10, ""):
                    print(f"          {line}")
            layers = {str(r.get("lineage_layer")) for r in enriched}
            warned = sum(1 for r in enriched if r.get("lineage_warning"))
            print(f"\n    layers: {', '.join(sorted(layers))}; events with lineage_warning: {warned}")

            problems = []
            if sourcetypes != SOURCETYPES:
                problems.append(f"sourcetypes {sorted(sourcetypes)}")
            if not LAYERS <= layers:
                problems.append(f"layers {sorted(layers)}, not all of {sorted(LAYERS)}")
            if len(services) < 6:
                problems.append(f"only {len(services)} serviceSource values")
            if len(detections) < 8:
                problems.append(f"only {len(detections)} detectionSource values")
            if not all(r.get("lineage_path") for r in enriched):
                problems.append("events without lineage_path")
            if not any(r.get("incident_title") for r in enriched if r.get("lineage_layer") == "detection"):
                problems.append("no alert was enriched from the incident store")
            if not any(r.get("incident_id") for r in enriched if r.get("lineage_layer") == "hunting"):
                problems.append("no hunting row was linked to its alert's incident")
            if problems:
                return fail("; ".join(problems))
    print(f"\nDemo OK in {time.monotonic() - started:.1f} s.")
    return 0


def _sample(records: list) -> list:
    """One event of each interesting kind: a hunting row linked to its incident, cross-product and merged
    incidents, alerts in and out of incidents."""
    picks = [
        lambda r: r.get("lineage_layer") == "hunting" and r.get("incident_id"),
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
