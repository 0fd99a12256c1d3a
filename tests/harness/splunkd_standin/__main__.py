"""Serve a stand-in's state from a process of its own:
python -m tests.harness.splunkd_standin --state-dir DIR [--app APP] [--lifetime SECONDS]

The state (confs, passwords, KV store) is the SQLite file in DIR, so a harness sets it up with its
own ``SplunkdStandin`` on the same DIR and lets this process answer the add-on. The session key
comes from the environment (SPLUNKD_STANDIN_SESSION_KEY), never the command line. Prints one JSON
line ({"uri": ...}) when it listens, and one more on SIGTERM: how many calls it answered (and per
path), the unknown endpoints called and how many requests crashed it.

Benchmarks use it so that the process reading an input's event stream does not share a GIL with
the one answering the input's REST calls (splunkd does both without one).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
from typing import Dict, List, Optional

from .server import SplunkdStandin

SESSION_KEY_ENV = "SPLUNKD_STANDIN_SESSION_KEY"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.splunkd_standin", description=__doc__)
    parser.add_argument("--state-dir", type=pathlib.Path, required=True)
    parser.add_argument("--app", default="TA-defender-lineage")
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds before the server stops itself")
    args = parser.parse_args(argv)
    session_key = os.environ.get(SESSION_KEY_ENV)
    if not session_key:
        parser.error(f"{SESSION_KEY_ENV} is not set")
    standin = SplunkdStandin(args.state_dir, app=args.app, max_lifetime=args.lifetime, session_key=session_key)
    standin.start()

    def on_signal(signum: int, frame: object) -> None:
        standin.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.stdout.write(json.dumps({"uri": standin.uri}) + "\n")
    sys.stdout.flush()
    while not standin.wait_stopped(0.5):
        pass
    unknown = [f"{c.method} {c.path}" for c in standin.unknown_calls]
    paths: Dict[str, int] = {}
    for call in standin.calls:
        paths[call.path] = paths.get(call.path, 0) + 1
    served = {"calls": len(standin.calls), "paths": paths, "unknown": unknown, "errors": len(standin.errors)}
    sys.stdout.write(json.dumps(served) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
