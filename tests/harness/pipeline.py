"""The add-on's main path, end to end, on the stand-ins: shared by the demo, the tests and the benches.

Graph simulator -> built modular input (XML on stdin, event stream on stdout, splunkd stand-in for
configuration and checkpoints) -> search-time fields from the shipped props.conf -> built
``defenderlineage`` over the chunked protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from tests.harness.graph_sim import GraphSimulator
from tests.harness.modinput_runner import Event, ModinputResult, run_modular_input
from tests.harness.searchtime import extract, load_props
from tests.harness.splunkd_standin import SplunkdStandin

ROOT = Path(__file__).resolve().parents[2]
ADDON = ROOT / "output" / "TA-defender-lineage"
ACCOUNT_ENCRYPTED = ["client_secret", "certificate", "private_key"]
Record = Dict[str, Union[str, List[str]]]
# Every input run's raw stdout and stderr, so the tests can prove no secret ever reaches them.
OUTPUTS: List[str] = []


def install_app(standin: SplunkdStandin, addon: Path = ADDON) -> None:
    """The add-on as installed: its default/*.conf (settings, collections) visible through splunkd."""
    standin.load_app_defaults(addon)


def seed_account(
    standin: SplunkdStandin,
    sim: GraphSimulator,
    name: str = "demo",
    secret: Optional[str] = None,
    tenant_id: Optional[str] = None,
) -> None:
    """An account pointing at the simulator, stored as UCC stores it (secret in storage/passwords);
    ``tenant_id``: a customer tenant of the simulator instead of its home tenant (same credential)."""
    standin.add_ucc_account(
        name,
        {
            "tenant_id": tenant_id or sim.tenant_id,
            "client_id": sim.client_id,
            "auth_type": "client_secret",
            "client_secret": sim.client_secret if secret is None else secret,
            "cloud": "custom",
            "login_url": sim.base_url,
            "graph_url": sim.base_url,
        },
        encrypted=["client_secret"],
    )


def run_input(
    standin: SplunkdStandin,
    workdir: Path,
    input_type: str,
    name: str,
    params: Dict[str, str],
    python: str,
    addon: Path = ADDON,
    timeout: float = 300.0,
    kill_after: Optional[float] = None,
    env: Optional[Dict[str, str]] = None,
) -> ModinputResult:
    stanza = {"index": "main", "interval": "300", **params}
    result = run_modular_input(
        script=addon / "bin" / f"{input_type}.py",
        python=python,
        standin=standin,
        stanzas={f"{input_type}://{name}": stanza},
        splunk_home=workdir / "splunk_home",
        checkpoint_dir=workdir / "checkpoints",
        timeout=timeout,
        kill_after=kill_after,
        env=env,
    )
    OUTPUTS.append(result.stdout.decode("utf-8", "replace"))
    OUTPUTS.append(result.stderr)
    return result


def log_lines(workdir: Path) -> List[str]:
    """Every line of the add-on's own log files written by runs under ``workdir``."""
    log_dir = workdir / "splunk_home" / "var" / "log" / "splunk"
    return [line for f in sorted(log_dir.glob("ta_defender_lineage_*.log")) for line in f.read_text().splitlines()]


def events_to_records(events: Sequence[Event], addon: Path = ADDON) -> List[Record]:
    """Events as a search hands them to a streaming command: _raw, metadata and extracted fields."""
    props = load_props(addon / "default" / "props.conf")
    records: List[Record] = []
    for event in events:
        record: Record = {
            "_raw": event.data,
            "_time": event.time,
            "source": event.source,
            "sourcetype": event.sourcetype,
            "index": event.index,
            "host": event.host or "demo-host",
        }
        for field, values in extract(props, event.sourcetype, event.data).items():
            record[field] = values[0] if len(values) == 1 else values
        records.append(record)
    return records


def values_of(record: Record, field: str) -> List[str]:
    value = record.get(field)
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, list) else [value]


def stats_values_by(records: Sequence[Record], fields: Sequence[str], by: Sequence[str]) -> List[Dict[str, List[str]]]:
    """``stats values(f)... by b...``: distinct values, lexicographically sorted as Splunk does."""
    groups: Dict[tuple, Dict[str, set]] = {}
    for record in records:
        key = tuple(values_of(record, b)[0] if values_of(record, b) else "" for b in by)
        group = groups.setdefault(key, {f: set() for f in fields})
        for f in fields:
            group[f].update(values_of(record, f))
    rows = []
    for key in sorted(groups):
        row = {b: [k] for b, k in zip(by, key)}
        row.update({f: sorted(v) for f, v in groups[key].items()})
        rows.append(row)
    return rows
