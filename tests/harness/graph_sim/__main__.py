"""Run the simulator: python -m tests.harness.graph_sim --seed 7 --port 0 --lifetime 600"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from datetime import datetime
from typing import List, Optional

from .server import GraphSimulator
from .tenant import SyntheticTenant

# The roles of a customer tenant where the app reads alerts and incidents.
READ_ALL = ("SecurityAlert.Read.All", "SecurityIncident.Read.All")


def customer_tenant_id(n: int) -> str:
    """The n-th customer tenant's id (a GUID, as the Tenants tab requires) for --customer-tenants."""
    return f"{n:08x}-0000-4000-8000-{n:012x}"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.graph_sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=900.0, help="seconds before the server stops itself")
    parser.add_argument("--anchor", help="the tenant's 'now', ISO-8601 UTC (default: now)")
    parser.add_argument("--bulk", type=int, default=0, help="serve a bulk tenant with this many alert versions")
    parser.add_argument("--single-version", action="store_true", help="bulk: one version per alert")
    parser.add_argument(
        "--hunting-density",
        action="append",
        default=[],
        metavar="TABLE=ROWS_PER_HOUR",
        help="advanced hunting: rows an hour of an activity table (repeatable)",
    )
    parser.add_argument(
        "--customer-tenants",
        type=int,
        default=0,
        metavar="N",
        help="N consented customer tenants (ids customer_tenant_id(1..N)), each served the home tenant's data",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, metavar="S", help="every answer (token and Graph) S seconds late"
    )
    args = parser.parse_args(argv)
    anchor = datetime.fromisoformat(args.anchor.replace("Z", "+00:00")) if args.anchor else None
    if args.bulk:
        tenant = SyntheticTenant.bulk(args.bulk, seed=args.seed, anchor=anchor, single_version=args.single_version)
    else:
        tenant = SyntheticTenant.generate(seed=args.seed, anchor=anchor)
    sim = GraphSimulator(tenant, max_lifetime=args.lifetime, port=args.port)
    for item in args.hunting_density:
        table, _, rows = item.partition("=")
        sim.hunting.density[table] = int(rows)
    for n in range(1, args.customer_tenants + 1):
        sim.add_customer_tenant(customer_tenant_id(n), *READ_ALL)
    if args.latency > 0:
        sim.faults.add(kind="delay", delay=args.latency, times=None)
    sim.start()

    def on_signal(signum: int, frame: object) -> None:
        sim.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    info = {
        "base_url": sim.base_url,
        "tenant_id": sim.tenant_id,
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
    }
    sys.stdout.write(json.dumps(info) + "\n")
    sys.stdout.flush()
    while not sim.wait_stopped(0.5):
        pass
    # What it served, for benchmarks that run it in its own process.
    tokens = sum(1 for r in sim.requests if r.path.endswith("/token"))
    hunting = len(sim.hunting_requests())
    rows = sim.hunting_rows_served
    served = {"requests": len(sim.requests), "tokens": tokens, "hunting": hunting, "hunting_rows": rows}
    sys.stdout.write(json.dumps(served) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
