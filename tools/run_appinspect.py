"""Run AppInspect (cloud tags, offline) on the package and hold the result to the project's bar.

Fails on any failure, error or future failure, and on any warning that is not listed with its
reason in tools/appinspect_warnings.json; prints every remaining warning with that reason.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
BAD = ("failure", "error", "future_failure", "manual_check")


def main(package: Path) -> int:
    reasons = json.loads((HERE / "appinspect_warnings.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        cmd = [
            str(Path(sys.executable).parent / "splunk-appinspect"),
            "inspect",
            str(package),
            "--mode",
            "precert",
            "--included-tags",
            "cloud",
            "--skip-trusted-libraries-update",
            "--data-format",
            "json",
            "--output-file",
            str(report_path),
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if not report_path.exists():
            print(run.stdout[-3000:], run.stderr[-3000:])
            return 1
        report = json.loads(report_path.read_text())
    summary = report["summary"]
    print("AppInspect (precert, cloud tags, offline):", json.dumps(summary, sort_keys=True))
    problems = 0
    for group in (g for r in report["reports"] for g in r["groups"]):
        for check in group["checks"]:
            result = check["result"]
            first = check["messages"][0]["message"][:240] if check["messages"] else ""
            if result in BAD:
                problems += 1
                print(f"  {result.upper()}: {check['name']}: {first}")
            elif result == "warning":
                reason = reasons.get(check["name"])
                if reason is None:
                    problems += 1
                    print(f"  UNEXPLAINED WARNING: {check['name']}: {first}")
                else:
                    print(f"  warning {check['name']}: {reason}")
    if problems:
        print(f"AppInspect: {problems} problem(s); see above")
        return 1
    print(f"AppInspect: 0 failures, 0 future failures, {summary.get('warning', 0)} explained warnings")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
