"""Advanced hunting throughput through the BUILT defender_hunting input (not a test).

One first run of a ``DeviceProcessEvents`` input over a 10-hour window (``lookback PT10H``) that the
Graph simulator (its own process, no added latency) fills with N rows (default 100,000: the
simulator's density is N/10 rows an hour), with the splunkd stand-in for configuration and the
checkpoint. Reports rows/s end to end through the input's XML output (the input process's own
life), the runHuntingQuery calls and token requests used, the windows and splits, and the input
process's peak RSS. A window at Graph's 100,000-row cap is ambiguous (the answer may be
truncated), so a window holding 100,000 rows or more costs a split; try --rows 120000.

Usage: python tools/bench_hunting.py --addon output/TA-defender-lineage [--python PY] [--rows N ...]
Prints a Markdown table on stdout (one line per N), nothing else.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HOURS = 10


def _python39() -> str:
    out = subprocess.run([str(ROOT / "tools" / "find_python.sh"), "3.9"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or sys.executable


def one_run(addon: Path, python: str, rows: int) -> Dict[str, object]:
    from tests.harness.pipeline import install_app, log_lines, run_input, seed_account
    from tests.harness.splunkd_standin import SplunkdStandin
    from tools.bench import PeakRss, simulator_process

    density = max(1, rows // HOURS)
    with simulator_process(["--seed", "7", "--hunting-density", f"DeviceProcessEvents={density}"]) as simulator:
        with tempfile.TemporaryDirectory(prefix="tadl-bench-hunting-") as tmp:
            work = Path(tmp)
            with SplunkdStandin(work / "sd", max_lifetime=900.0) as sd:
                install_app(sd, addon)
                seed_account(sd, simulator.info, "bench")  # type: ignore[arg-type]
                with PeakRss("defender_hunting.py") as probe:
                    result = run_input(
                        sd,
                        work,
                        "defender_hunting",
                        "bench",
                        {
                            "account": "bench",
                            "query": "DeviceProcessEvents",
                            "lookback": f"PT{HOURS}H",
                            "interval": "3600",
                        },
                        python,
                        addon=addon,
                        timeout=900.0,
                        # Budgets off: measure the machinery (the hunting budget allows 30 calls a minute).
                        env={
                            "TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "0",
                            "TA_DEFENDER_LINEAGE_HUNTING_PER_MINUTE": "0",
                        },
                    )
                summary: Dict[str, str] = {}
                for line in log_lines(work):
                    if "run_summary" in line:
                        summary = dict(re.findall(r"(\w+)=(\S+)", line.split("run_summary", 1)[1]))
    served = simulator.served
    if result.returncode != 0 or summary.get("status") != "ok":
        raise SystemExit(f"hunting bench {rows}: rc={result.returncode} {summary}\n{result.stderr[-2000:]}")
    events = len(result.events)
    return {
        "rows": events,
        "served": served.get("hunting_rows", 0),
        "seconds": round(result.seconds, 2),
        "rows_per_s": round(events / result.seconds),
        "hunting_calls": served.get("hunting", 0),
        "tokens": served["tokens"],
        "windows": int(summary.get("windows", 0)),
        "splits": int(summary.get("splits", 0)),
        "peak_rss_mb": round(probe.peak_kb / 1024, 1),
    }


def table(results: List[Dict[str, object]]) -> str:
    lines = [
        "| rows asked for | rows served | events written | seconds | rows/s | runHuntingQuery calls | tokens "
        "| windows (splits) "
        "| input peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rss = f"{r['peak_rss_mb']} MB"
        lines.append(
            f"| {r['target']:,} | {r['served']:,} | {r['rows']:,} | {r['seconds']} | {r['rows_per_s']:,} | "
            f"{r['hunting_calls']} | {r['tokens']} | {r['windows']} ({r['splits']}) | {rss} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addon", type=Path, default=ROOT / "output" / "TA-defender-lineage")
    parser.add_argument("--python", default=None, help="interpreter that runs the add-on (default: Python 3.9)")
    parser.add_argument("--rows", type=int, action="append", help="rows in the window (repeatable; default 100000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per run instead of the table")
    args = parser.parse_args()
    python = args.python or _python39()
    results = []
    for rows in args.rows or [100_000]:
        result = one_run(args.addon, python, rows)
        result["target"] = rows
        results.append(result)
        if args.json:
            print(json.dumps(result))
    if not args.json:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
