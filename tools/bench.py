"""`make bench`: throughput figures, measured side by side in one run (not a test).

1. Backfill through the BUILT defender_alerts input: 10,000 and 100,000 alert versions from the
   Graph simulator (no added latency), splunkd stand-in for configuration, the cursor and the
   incident store, each in a process of its own (as Graph and splunkd are), after one untimed
   1,000-version run (splunkd's Python keeps bytecode after an input's first run), on Python 3.9
   and 3.13 (the interpreters the add-on declares). Five runs per size and interpreter, interleaved;
   reports the median run's events/s end to end through the input's XML output (and the range),
   requests used (= pages + tokens) and the input process's peak RSS for both sizes (memory must not
   grow with the backfill).
2. Advanced hunting (tools/bench_hunting.py): one 100,000-row window through the BUILT
   defender_hunting input.
3. The search command (tools/bench_command.py): defenderlineage against a splunklib no-op and a
   constant-fields command, with incidents=false and incidents=true.
4. Many tenants under one input (tools/bench_tenants.py): the idle cycle of alerts + incidents at 10,
   100 and 500 tenants beside one stanza per tenant, a backfill of 100 and 300 tenants x 1,000 alerts,
   and the 500-tenant idle cycle at 0.2 s of Graph latency.

Each part's figures are printed as soon as that part is measured; the bench ends with a summary
naming every goal missed. A missed goal is a figure, not an error: the exit status is non-zero only
when a part could not be measured (the other parts are still measured and printed).
`--update-docs` writes the tables between the bench markers in docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = (10_000, 100_000)


class PeakRss:
    """Peak RSS (VmHWM) of this process's child running `script`, polled from /proc.

    getrusage's ru_maxrss cannot be used: Linux hands an exec'd child the high-water mark of the
    process that forked it (here the one holding the 100k-version simulator). VmHWM belongs to the
    child's own address space; it only grows, so the last reading before exit is the peak.
    """

    def __init__(self, script: str) -> None:
        self.script = script.encode()
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _poll(self) -> None:
        # /proc is scanned only until the child appears, then its own status file is read: a scan of
        # every process each tick cost the harness a tenth of a core, taken from the run it measures.
        child: Optional[Path] = None
        while not self._stop.wait(0.02):
            child = child or self._find_child()
            if child is None:
                continue
            try:
                hwm = int(child.read_text().split("VmHWM:")[1].split()[0])
            except (OSError, IndexError, ValueError):  # gone, or a zombie (no VmHWM any more)
                continue
            self.peak_kb = max(self.peak_kb, hwm)

    def _find_child(self) -> Optional[Path]:
        me = f"PPid:\t{os.getpid()}\n"
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                if me in status.read_text() and self.script in (status.parent / "cmdline").read_bytes():
                    return status
            except OSError:
                continue
        return None


@dataclass
class ServerProcess:
    info: SimpleNamespace  # what it printed when it started listening (plus what the caller adds)
    served: Dict[str, Any] = field(default_factory=dict)  # what it printed when told to stop


@contextlib.contextmanager
def server_process(module: str, args: List[str], env: Optional[Dict[str, str]] = None) -> Iterator[ServerProcess]:
    """``python -m <module> <args>`` in a process of its own: it prints one JSON line when it
    listens and one more after SIGTERM (both harness servers do), read into ``info`` and ``served``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert proc.stdout is not None
        handle = ServerProcess(SimpleNamespace(**json.loads(proc.stdout.readline())))
        yield handle
        proc.send_signal(signal.SIGTERM)
        handle.served.update(json.loads(proc.stdout.readline()))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def simulator_process(args: List[str]) -> ContextManager[ServerProcess]:
    """The Graph simulator in a process of its own, so a measured input is not held back by the
    simulator sharing a GIL with the harness that parses the event stream. ``info`` holds base_url,
    tenant_id, client_id and client_secret (what seed_account needs); ``served`` requests and tokens."""
    return server_process("tests.harness.graph_sim", ["--lifetime", "900", *args])


@contextlib.contextmanager
def standin_process(state_dir: Path, app: str = "TA-defender-lineage") -> Iterator[ServerProcess]:
    """The splunkd stand-in answering from a process of its own, over state set up beforehand in
    ``state_dir`` (``SplunkdStandin(state_dir)`` in this process). The process that reads an
    input's event stream then does not share a GIL with the one answering its KV store writes;
    splunkd does both without one. ``info`` holds what the modular input runner needs."""
    import secrets

    session_key = secrets.token_urlsafe(32)
    args = ["--state-dir", str(state_dir), "--app", app]
    with server_process("tests.harness.splunkd_standin", args, {"SPLUNKD_STANDIN_SESSION_KEY": session_key}) as handle:
        handle.info.session_key, handle.info.app, handle.info.state_dir = session_key, app, state_dir
        yield handle


def backfill_once(addon: Path, python: str, n: int) -> dict:
    """One backfill of `n` alert versions through the built input."""
    from tests.harness.pipeline import install_app, run_input, seed_account
    from tests.harness.splunkd_standin import SplunkdStandin

    with simulator_process(["--seed", "11", "--bulk", str(n), "--single-version"]) as simulator:
        sim = simulator.info
        with tempfile.TemporaryDirectory(prefix="tadl-bench-") as tmp:
            work = Path(tmp)
            setup = SplunkdStandin(work / "sd")
            install_app(setup, addon)
            seed_account(setup, sim, "bench")  # type: ignore[arg-type]
            setup.close()
            with standin_process(work / "sd") as standin:
                sd = standin.info
                started = time.perf_counter()
                with PeakRss("defender_alerts.py") as rss:
                    result = run_input(
                        sd,  # type: ignore[arg-type]
                        work,
                        "defender_alerts",
                        "bench",
                        {"account": "bench", "start_date": "2020-01-01T00:00:00Z", "interval": "3600"},
                        python,
                        addon=addon,
                        timeout=900.0,
                        # The 150 requests/minute budget caps a backfill near 2,000 alerts/s by design;
                        # switched off here to measure the machinery itself.
                        env={"TA_DEFENDER_LINEAGE_REQUESTS_PER_MINUTE": "0"},
                    )
                harness_seconds = time.perf_counter() - started
    served = simulator.served
    if result.returncode != 0 or len(result.events) != n:
        raise SystemExit(f"backfill {n}: rc={result.returncode} events={len(result.events)}\n{result.stderr[-2000:]}")
    if standin.served.get("unknown") or standin.served.get("errors"):
        raise SystemExit(f"backfill {n}: the splunkd stand-in saw {standin.served}")
    return {
        "versions": n,
        "events": len(result.events),
        # The input process's own life (start to exit), not the harness parsing its 300 MB of XML after.
        "seconds": round(result.seconds, 2),
        "events_per_s": round(len(result.events) / result.seconds),
        "harness_seconds": round(harness_seconds, 2),
        "requests": served["requests"],
        "pages": served["requests"] - served["tokens"],
        "tokens": served["tokens"],
        "peak_rss_mb": round(rss.peak_kb / 1024, 1),
    }


WARM_UP = 1_000  # one untimed backfill first: the first run after a build compiles the add-on's bytecode
# Runs per size and interpreter, interleaved (10k, 100k, 10k, ...) so that a slow spell of this shared machine does not
# fall on one size only; the median run is reported, with the range.
RUNS = 5


def _one_backfill(addon: Path, python: str, n: int) -> Dict[str, Any]:
    args = ["--addon", str(addon), "--python", python, "--one-backfill", str(n)]
    result: Dict[str, Any] = json.loads(_tool_report("bench.py", args, f"backfill of {n}").splitlines()[-1])
    return result


def _interpreter(python: str) -> str:
    return subprocess.run([python, "-V"], capture_output=True, text=True, check=False).stdout.strip() or python


def backfill_table(addon: Path, pythons: List[str]) -> Tuple[str, List[str]]:
    """Both sizes on every interpreter the add-on runs on, interleaved run by run: the table, and the
    goals it missed (one phrase each)."""
    names = {python: _interpreter(python) for python in pythons}
    for python in pythons:
        _one_backfill(addon, python, WARM_UP)
    runs: Dict[tuple[str, int], List[Dict[str, Any]]] = {(p, n): [] for p in pythons for n in SIZES}
    for round_ in range(1, RUNS + 1):
        for python in pythons:
            for n in SIZES:
                run = _one_backfill(addon, python, n)
                runs[python, n].append(run)
                progress(f"  run {round_}/{RUNS}, {n:,} versions, {names[python]}: {run['events_per_s']:,} events/s")
    lines = [
        f"| add-on interpreter | alert versions | events written | seconds | events/s (median of {RUNS}) "
        f"| range of the {RUNS} runs | requests (pages + tokens) | input peak RSS (highest of {RUNS}) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    missed: List[str] = []
    for python in pythons:
        version = _interpreter(python)
        rows = []
        for n in SIZES:
            ordered = sorted(runs[python, n], key=lambda r: r["events_per_s"])
            row = dict(ordered[len(ordered) // 2])
            row["low"], row["high"] = ordered[0]["events_per_s"], ordered[-1]["events_per_s"]
            row["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs[python, n])  # the worst run: memory is a bound
            row["requests_ok"] = all(r["requests"] == r["pages"] + r["tokens"] for r in runs[python, n])
            rows.append(row)
            lines.append(
                f"| {version} | {row['versions']:,} | {row['events']:,} | {row['seconds']} | "
                f"{row['events_per_s']:,} | {row['low']:,} to {row['high']:,} | "
                f"{row['requests']} ({row['pages']} + {row['tokens']}) | {row['peak_rss_mb']} MB |"
            )
        small, large = rows
        growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
        ok_requests = all(r["requests_ok"] for r in rows)
        if abs(growth) > 0.10:
            missed.append(
                f"backfill, {version}: peak RSS of the 100k backfill {growth:+.1%} against 10k (goal: within 10%)"
            )
        if not ok_requests:
            missed.append(f"backfill, {version}: requests = pages + tokens not true in every run")
        missed.extend(
            f"backfill, {version}: {r['events_per_s']:,} events/s at {r['versions']:,} versions (goal: 10,000)"
            for r in rows
            if r["events_per_s"] < 10_000
        )
        verdicts.append(
            f"{version}: peak RSS of the 100k backfill {growth:+.1%} against the 10k one (goal: within "
            f"10%); requests = pages + tokens in every run: {'yes' if ok_requests else 'NO'}; goal 10,000 events/s "
            "(median run): "
            + ", ".join(
                f"{'met' if r['events_per_s'] >= 10_000 else 'NOT met'} at {r['versions']:,} versions" for r in rows
            )
            + "."
        )
    lines.append("")
    lines.extend(f"- {verdict}" for verdict in verdicts)
    return "\n".join(lines), missed


def _tool_report(script: str, args: List[str], what: str) -> str:
    """What a bench tool (tools/bench_*.py, or this one for one backfill) prints; stops the bench if it fails."""
    out = subprocess.run([sys.executable, str(ROOT / "tools" / script), *args], capture_output=True, text=True)
    if out.returncode != 0:
        print(out.stdout[-3000:], out.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{what} bench failed")
    return out.stdout.strip()


def command_table(addon: Path, python: str) -> str:
    return _tool_report("bench_command.py", ["--addon", str(addon), "--python", python], "command")


def hunting_table(addon: Path, python: str) -> str:
    return _tool_report("bench_hunting.py", ["--addon", str(addon), "--python", python, "--rows", "100000"], "hunting")


def tenants_table(addon: Path, pythons: List[str]) -> str:
    """The tenant bench on each interpreter the add-on declares (about 100 s each, latency row included)."""
    reports = [
        _tool_report("bench_tenants.py", ["--addon", str(addon), "--python", python], "tenants") for python in pythons
    ]
    return "\n\n".join(reports)


def _find_python(version: str) -> str:
    found = subprocess.run([str(ROOT / "tools" / "find_python.sh"), version], capture_output=True, text=True)
    return found.stdout.strip()


def progress(line: str) -> None:
    """A line printed now, not when the bench ends (the output may be a pipe, which Python buffers)."""
    print(line, flush=True)


def command_goals_missed(report: str) -> List[str]:
    """The goals tools/bench_command.py reports as missed (its lines ``- **missed**: <goal>``)."""
    return [f"command: {line.split(':', 1)[1].strip()}" for line in report.splitlines() if "**missed**" in line]


def tenant_goals_missed(report: str) -> List[str]:
    """The goals tools/bench_tenants.py reports as missed (``- **missed**: tenants: <goal>``)."""
    return [line.split(":", 1)[1].strip() for line in report.splitlines() if "**missed**" in line]


# The parts, in the order they are measured and printed. Each returns its figures (Markdown) and the
# goals they missed. A part that fails does not throw away the figures measured before it.
Part = Tuple[str, str, Callable[[], Tuple[str, List[str]]]]  # name, title in the docs, measure


def run_parts(parts: List[Part]) -> Tuple[List[str], List[str], List[str]]:
    """Measure each part and print its figures as soon as they are known; then say which goals were
    missed and which parts failed. Returns (figures, missed goals, failed parts)."""
    figures: List[str] = []
    missed: List[str] = []
    failed: List[str] = []
    for name, title, measure in parts:
        progress(f"\n== {name}: measuring ...")
        started = time.monotonic()
        try:
            text, part_missed = measure()
        except (SystemExit, Exception) as error:  # a broken part must not hide the figures of the others
            failed.append(f"{name}: {error}")
            progress(f"== {name}: FAILED after {time.monotonic() - started:.0f} s: {error}")
            continue
        figures.append(f"{title}\n\n{text}")
        missed.extend(part_missed)
        progress(f"== {name} ({time.monotonic() - started:.0f} s)\n\n{text}")
    progress("\n== Summary")
    if missed:
        progress(f"{len(missed)} goal(s) MISSED:")
        for goal in missed:
            progress(f"  - {goal}")
    else:
        progress("every goal met" if not failed else "every goal of the parts measured met")
    for part in failed:
        progress(f"  part FAILED: {part}")
    return figures, missed, failed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addon", type=Path, default=ROOT / "output" / "TA-defender-lineage")
    parser.add_argument("--python", default=None, help="interpreter that runs the add-on (default: Python 3.9)")
    parser.add_argument("--one-backfill", type=int, default=0, help=argparse.SUPPRESS)
    # --update-readme: the old name, from when the figures lived in README.md.
    parser.add_argument("--update-docs", "--update-readme", dest="update_docs", action="store_true")
    args = parser.parse_args()
    python = args.python or _find_python("3.9") or sys.executable
    if args.one_backfill:
        print(json.dumps(backfill_once(args.addon.resolve(), python, args.one_backfill)))
        return 0
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` on {platform.machine()}, "
        f"{os.cpu_count()} cores; add-on interpreter for the hunting and command figures: {_interpreter(python)}."
    )
    progress(header)
    # The backfill on both interpreters the add-on declares (python.required = 3.9, 3.13).
    pythons = [python]
    newer = args.python is None and _find_python("3.13")
    if args.python is None and not newer:
        print("*** Python 3.13 NOT FOUND: the backfill is measured on Python 3.9 only ***", file=sys.stderr)
    elif newer:
        pythons.append(newer)
    addon = args.addon.resolve()
    parts: List[Part] = [
        (
            "backfill",
            "**Backfill through the built `defender_alerts` input** (Graph simulator and splunkd stand-in "
            "each in a process of their own, request budget off; after one untimed run, which leaves the add-on's "
            "bytecode as splunkd's Python does)",
            lambda: backfill_table(addon, pythons),
        ),
        (
            "hunting",
            "**Advanced hunting: one 100,000-row window through the built `defender_hunting` input** "
            "(simulator in its own process, budgets off). The window's edges fall with the clock, so it holds "
            "99,99x to 100,000 rows; at 100,000 (Graph's cap) an answer may be truncated, so the input splits the "
            "window and asks again: rows served then counts the answer it set aside as well.",
            lambda: (hunting_table(addon, python), []),
        ),
        (
            "command",
            "**`defenderlineage` over the chunked protocol**",
            lambda: _with_missed(command_table(addon, python), command_goals_missed),
        ),
        (
            "tenants",
            "**Many tenants under one input** (`tools/bench_tenants.py`: the built `defender_alerts` and "
            "`defender_incidents` inputs with `tenants = *`, Graph simulator and splunkd stand-in each in a process "
            "of their own, request budget on; CPU is the input process's user + system time)",
            lambda: _with_missed(tenants_table(addon, pythons), tenant_goals_missed),
        ),
    ]
    figures, _, failed = run_parts(parts)
    if args.update_docs and not failed:
        report = header + "\n\n" + "\n\n".join(figures) + "\n"
        page = ROOT / "docs" / "performance.md"
        text = page.read_text()
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        page.write_text(f"{head}{start}\n{report}{end}{tail}")
        progress("docs/performance.md updated")
    elif args.update_docs:
        progress("docs/performance.md NOT updated: a part failed")
    # A missed goal is a figure, not an error (the convention of every bench tool here); a part
    # that could not be measured is.
    return 1 if failed else 0


def _with_missed(text: str, find: Callable[[str], List[str]]) -> Tuple[str, List[str]]:
    return text, find(text)


if __name__ == "__main__":
    sys.exit(main())
