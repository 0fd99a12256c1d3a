"""The BUILT modular inputs, run as splunkd runs them, against the Graph simulator and splunkd stand-in.

Every collection test asserts the exact multiset of (id, lastUpdateDateTime) written.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Dict, Iterable, Tuple

import pytest

from defender_lineage_core.timestamps import epoch_seconds, parse_instant
from tests.harness.graph_sim import GraphSimulator
from tests.harness.modinput_runner import run_scheme, run_validate
from tests.harness.pipeline import events_to_records, log_lines, run_input, seed_account
from tests.harness.scp_driver import run_command
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import scan_for_secrets

RESOURCES = {"defender_alerts": "alerts_v2", "defender_incidents": "incidents"}
FAR_BACK = "2020-01-01T00:00:00Z"


def latest_visible(versions: Iterable[Tuple[str, str, Dict]], clock: int) -> Dict[str, str]:
    """What Graph shows at `clock`: each item's newest version not after it."""
    best: Dict[str, Tuple[int, str]] = {}
    for key, stamp, _ in versions:
        ticks = parse_instant(stamp)
        if ticks is not None and ticks <= clock and (key not in best or ticks > best[key][0]):
            best[key] = (ticks, stamp)
    return {key: stamp for key, (_, stamp) in best.items()}


def written(events) -> Counter:
    return Counter((json.loads(e.data)["id"], json.loads(e.data)["lastUpdateDateTime"]) for e in events)


@pytest.mark.parametrize("input_type", sorted(RESOURCES))
def test_collects_every_visible_version_once_then_nothing(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path, input_type: str
):
    seed_account(splunkd, sim, "acme")
    params = {"account": "acme", "start_date": FAR_BACK, "index": "defender"}
    first = run_input(splunkd, tmp_path, input_type, "t1", params, python, addon=addon)
    assert first.returncode == 0, first.stderr[-2000:]
    resource = RESOURCES[input_type]
    versions = sim.tenant.alert_versions() if resource == "alerts_v2" else sim.tenant.incident_versions()
    expected = Counter(latest_visible(versions, sim.tenant.anchor_ticks).items())
    assert written(first.events) == expected
    event = first.events[0]
    assert (
        event.sourcetype
        == {"alerts_v2": "ms:defender:graph:alert", "incidents": "ms:defender:graph:incident"}[resource]
    )
    assert event.source == f"ms_graph://{sim.tenant_id}/security/{resource}"
    assert event.index == "defender"
    for e in first.events:  # _time is lastUpdateDateTime
        item = json.loads(e.data)
        assert float(e.time) == pytest.approx(epoch_seconds(parse_instant(item["lastUpdateDateTime"]) or 0), abs=0.001)
    # Graph's request shape: ascending cursor filter, every enum member, incidents' page cap.
    lists = [r for r in sim.requests if r.path.endswith(resource)]
    assert lists and all(r.header("Prefer") == "include-unknown-enum-members" for r in lists)
    assert lists[0].query["$orderby"] == "lastUpdateDateTime asc"
    assert lists[0].query["$filter"].startswith("lastUpdateDateTime ge 2020-01-01T00:00:00")
    if resource == "incidents":
        assert int(lists[0].query["$top"]) <= 50 and "$expand" not in lists[0].query
    lines = log_lines(tmp_path)
    assert not [line for line in lines if "Traceback" in line or "ERROR" in line], "a clean run logs no error"
    assert any("events_ingested" in line for line in lines)
    summary = [line for line in lines if "run_summary" in line]
    assert summary and f"events={len(first.events)}" in summary[-1] and "status=ok" in summary[-1]
    assert splunkd.kv_records("ta_defender_lineage_checkpoints")

    again = run_input(splunkd, tmp_path, input_type, "t1", params, python, addon=addon)
    assert again.returncode == 0 and again.events == []
    assert "skipped_duplicates=" in [line for line in log_lines(tmp_path) if "run_summary" in line][-1]


def test_new_versions_over_time_are_each_written_once(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    params = {"account": "acme", "start_date": FAR_BACK}
    versions = sim.tenant.alert_versions()
    anchor = sim.tenant.anchor
    total: Counter = Counter()
    expected: set = set()
    for days_back in (5, 3, 1.5, 0.2, 0):
        clock = anchor - timedelta(days=days_back)
        sim.set_clock(clock)
        result = run_input(splunkd, tmp_path, "defender_alerts", "t2", params, python, addon=addon)
        assert result.returncode == 0, result.stderr[-2000:]
        total += written(result.events)
        ticks = parse_instant(clock.strftime("%Y-%m-%dT%H:%M:%S.%fZ")) or 0
        expected |= set(latest_visible(versions, ticks).items())
    assert set(total) == expected
    assert all(n == 1 for n in total.values()), "a version was written twice"
    assert len(total) > len({k for k, _ in total}), "the tenant must show alerts with several versions"


def test_expand_alerts_and_hidden_enum_members(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    result = run_input(
        splunkd,
        tmp_path,
        "defender_incidents",
        "x",
        {"account": "acme", "start_date": FAR_BACK, "expand_alerts": "1"},
        python,
        addon=addon,
    )
    assert result.returncode == 0
    incidents = [json.loads(e.data) for e in result.events]
    assert any(i.get("alerts") for i in incidents)
    services = {a["serviceSource"] for i in incidents for a in i.get("alerts", [])}
    assert "unknownFutureValue" not in services
    assert {"microsoftDefenderForCloud", "microsoftSentinel"} & services  # only with the Prefer header
    assert any(i.get("status") == "redirected" and i.get("redirectIncidentId") for i in incidents)


def test_wrong_secret_is_logged_once_with_the_entra_code_and_no_secret(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    wrong = "not-the-secret-1234567"
    seed_account(splunkd, sim, "acme", secret=wrong)
    result = run_input(splunkd, tmp_path, "defender_alerts", "bad", {"account": "acme"}, python, addon=addon)
    assert result.events == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1
    assert "AADSTS7000215" in failures[0] and "Value" in failures[0]
    assert not scan_for_secrets(
        [tmp_path / "splunk_home"],
        [result.stderr, result.stdout.decode()],
        [wrong, sim.client_secret, splunkd.session_key],
    )


def test_missing_permission_names_the_permission_and_consent(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    sim.set_roles("SecurityIncident.Read.All")
    seed_account(splunkd, sim, "acme")
    result = run_input(splunkd, tmp_path, "defender_alerts", "perm", {"account": "acme"}, python, addon=addon)
    assert result.events == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1 and "SecurityAlert.Read.All" in failures[0] and "admin consent" in failures[0]


def test_unknown_account_is_a_clear_error(addon, python, sim, splunkd: SplunkdStandin, tmp_path: Path):
    result = run_input(splunkd, tmp_path, "defender_alerts", "x", {"account": "nope"}, python, addon=addon)
    assert result.events == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1 and "account 'nope' does not exist" in failures[0]


def test_scheme_and_validation_name_the_field(addon, python, splunkd: SplunkdStandin):
    scheme = run_scheme(addon / "bin" / "defender_incidents.py", python)
    assert {"account", "start_date", "expand_alerts"} <= set(scheme.arguments)
    code, out, _ = run_validate(
        addon / "bin" / "defender_alerts.py",
        python,
        splunkd,
        {"account": "acme", "start_date": "last tuesday", "interval": "300"},
    )
    assert code != 0 and "start_date" in out
    code, out, _ = run_validate(
        addon / "bin" / "defender_alerts.py",
        python,
        splunkd,
        {"account": "acme", "start_date": "2026-11-01", "interval": "300"},
    )
    assert code == 0, out


def test_the_secret_scan_finds_a_leak(tmp_path: Path):
    # The guard every integration test runs must be able to fail.
    log = tmp_path / "var" / "log" / "x.log"
    log.parent.mkdir(parents=True)
    log.write_text("token=eyJ0eXAiOiJKV1QifQ.payload.sig other=1")
    assert scan_for_secrets([tmp_path / "var"], [], ["eyJ0eXAiOiJKV1QifQ.payload.sig"]) != []
    assert scan_for_secrets([tmp_path / "var"], ["...s3cr3t-value..."], ["s3cr3t-value"]) != []
    assert scan_for_secrets([tmp_path / "var"], ["clean"], ["s3cr3t-value"]) == []


def test_inputs_feed_the_incident_store_that_enriches_the_command(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path
):
    seed_account(splunkd, sim, "acme")
    events = []
    for input_type in ("defender_alerts", "defender_incidents"):
        result = run_input(
            splunkd, tmp_path, input_type, "s", {"account": "acme", "start_date": FAR_BACK}, python, addon=addon
        )
        assert result.returncode == 0
        events += result.events
    docs = splunkd.kv_records("ta_defender_lineage_incidents")
    assert docs, "the inputs wrote nothing to the incident store"
    alert_ids = {json.loads(e.data)["id"] for e in events if e.sourcetype == "ms:defender:graph:alert"}
    stored = {d["alert_id"] for d in docs if d.get("doc_type") == "alert" and d.get("origin") == "alerts"}
    assert alert_ids and alert_ids <= stored, "every alert written has its document in the store"
    records = events_to_records(events, addon)
    lineage = run_command(addon, python, records, splunkd_uri=splunkd.uri, session_key=splunkd.session_key)
    assert lineage.error is None and len(lineage.records) == len(records)
    alerts = [r for r in lineage.records if r.get("lineage_layer") == "detection" and r.get("incident_id")]
    assert alerts and all(r.get("incident_title") and r.get("incident_status") for r in alerts)
    crossing = [r for r in lineage.records if r.get("incident_cross_product") == "true"]
    assert crossing, "the synthetic tenant has incidents spanning products"
    merged = [r for r in lineage.records if r.get("incident_id_original")]
    assert merged and all(r["incident_id"] != r["incident_id_original"] for r in merged)
