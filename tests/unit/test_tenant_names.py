"""tenant_name at search time: the tenants lookup's rows (core) and the shipped automatic lookups, through
the search-time interpreter (tests/harness/searchtime.py), which models props.conf's LOOKUP-<class> as
props.conf.spec defines it. The last tests prove the interpreter refuses, or gives nothing for, a
stanza Splunk would not honour."""

from __future__ import annotations

import configparser
import json
from pathlib import Path
from typing import Dict, List

import pytest

from defender_lineage_core.tenants import tenant_name_rows
from tests.fixture_paths import SAMPLES
from tests.harness.searchtime import SplunkRuleViolation, UnsupportedProps, extract, load_props, load_transforms

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "package" / "default"
LOOKUP = "ta_defender_lineage_tenants_lookup"
CONTOSO = "0f1e2d3c-4b5a-4987-8654-3210fedcba98"
FABRIKAM = "1a2b3c4d-5e6f-4a0b-9c8d-7e6f5a4b3c2d"
EVENT_SOURCETYPES = (
    "ms:defender:graph:alert",
    "ms:defender:graph:incident",
    "ms:defender:graph:hunting",
    "ms:defender:graph:action",
)


@pytest.fixture(scope="module")
def props() -> configparser.RawConfigParser:
    return load_props(DEFAULT / "props.conf")


def rows(**labels: str) -> Dict[str, List[Dict[str, str]]]:
    entries = {label: {"tenant_id": tenant, "account": "msp"} for label, tenant in labels.items()}
    return {LOOKUP: list(tenant_name_rows(entries).values())}


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


def with_tenant(name: str, key: str, tenant: str) -> str:
    doc = json.loads(sample(name))
    doc[key] = tenant
    return json.dumps(doc, separators=(",", ":"))


# ------------------------------------------------------------------------------- the lookup's rows
def test_rows_one_per_tenant_id_enabled_first_then_label_order() -> None:
    entries = {
        "b-paused": {"tenant_id": CONTOSO.upper(), "account": "msp", "disabled": "1"},
        "contoso": {"tenant_id": CONTOSO, "account": "msp"},
        "a-old": {"tenant_id": FABRIKAM, "account": "old", "disabled": "true"},
        "broken": {"tenant_id": "not-a-guid", "account": "msp"},
    }
    assert tenant_name_rows(entries) == {
        CONTOSO: {"_key": CONTOSO, "tenant_id": CONTOSO, "tenant_name": "contoso", "account": "msp"},
        # a disabled entry still names its tenant: its events stay searchable
        FABRIKAM: {"_key": FABRIKAM, "tenant_id": FABRIKAM, "tenant_name": "a-old", "account": "old"},
    }
    assert tenant_name_rows({}) == {}


# ------------------------------------------------------------------ the shipped automatic lookups
def test_every_event_sourcetype_of_the_add_on_has_the_lookup(props: configparser.RawConfigParser) -> None:
    for sourcetype in (*EVENT_SOURCETYPES, "ta:defender:lineage:log"):
        lookups = [v for k, v in props.items(sourcetype) if k.lower().startswith("lookup")]
        assert len(lookups) == 1 and lookups[0].split()[0] == LOOKUP, sourcetype
        assert lookups[0].split()[-2:] == ["OUTPUTNEW", "tenant_name"], sourcetype


@pytest.mark.parametrize(
    ("sourcetype", "raw", "source"),
    [
        ("ms:defender:graph:alert", with_tenant("alert_v2.json", "tenantId", CONTOSO), ""),
        ("ms:defender:graph:incident", with_tenant("incident.json", "tenantId", CONTOSO.upper()), ""),
        ("ms:defender:graph:action", with_tenant("action_audit.json", "tenant_id", CONTOSO), ""),
        (
            "ms:defender:graph:hunting",
            '{"Timestamp":"2026-12-01T10:00:00Z","AlertId":"da1","Title":"t","QueryName":"h","HuntingTable":"AlertInfo"}',
            f"ms_graph://{CONTOSO}/security/runHuntingQuery/h",
        ),
    ],
)
def test_each_sourcetype_gets_its_tenant_name(
    props: configparser.RawConfigParser, sourcetype: str, raw: str, source: str
) -> None:
    metadata = {"source": source or f"ms_graph://{FABRIKAM}/security/x", "sourcetype": sourcetype}
    fields = extract(props, sourcetype, raw, metadata=metadata, lookup_rows=rows(contoso=CONTOSO, fabrikam=FABRIKAM))
    assert fields["tenant_name"] == ["contoso"]
    # A tenant the Tenants tab does not know (a single-tenant install: no rows) gets no tenant_name.
    assert "tenant_name" not in extract(props, sourcetype, raw, metadata=metadata, lookup_rows=rows())


def test_hunting_row_read_from_a_file_names_no_tenant(props: configparser.RawConfigParser) -> None:
    raw = '{"Timestamp":"2026-12-01T10:00:00Z","AlertId":"da1"}'
    fields = extract(
        props,
        "ms:defender:graph:hunting",
        raw,
        metadata={"source": "/opt/exports/ms_graph_export.json"},
        lookup_rows=rows(contoso=CONTOSO),
    )
    assert "dl_tenant_id" not in fields and "tenant_name" not in fields


def test_outputnew_keeps_the_tenant_name_an_event_already_has(props: configparser.RawConfigParser) -> None:
    raw = with_tenant("action_audit.json", "tenant_id", CONTOSO)
    raw = raw[:-1] + ',"tenant_name":"as-logged"}'
    fields = extract(props, "ms:defender:graph:action", raw, lookup_rows=rows(contoso=CONTOSO))
    assert fields["tenant_name"] == ["as-logged"]


# ------------------------------------------------- the interpreter holds LOOKUP to props.conf.spec
def _conf(text: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


TRANSFORMS = _conf(
    f"[{LOOKUP}]\nexternal_type = kvstore\ncollection = c\ncase_sensitive_match = false\n"
    "fields_list = _key, tenant_id, tenant_name, account\n"
)
RAW = json.dumps({"tenantId": CONTOSO, "tenant_name": "old"})


def _extract(line: str, raw: str = RAW, transforms: configparser.RawConfigParser = TRANSFORMS) -> Dict[str, List[str]]:
    return extract(
        _conf(f"[st]\nKV_MODE = json\n{line}\n"), "st", raw, transforms=transforms, lookup_rows=rows(c=CONTOSO)
    )


def test_a_lookup_matching_a_field_the_event_does_not_have_gives_nothing() -> None:
    # The old mistake a wrong stanza makes: the event's field is tenantId, not tenant_id.
    assert "account" not in _extract(f"LOOKUP-t = {LOOKUP} tenant_id OUTPUT account")
    assert _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT account")["account"] == ["msp"]


def test_output_overrides_outputnew_does_not_and_no_match_clears_output() -> None:
    assert _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT tenant_name")["tenant_name"] == ["c"]
    assert _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUTNEW tenant_name")["tenant_name"] == ["old"]
    unknown = json.dumps({"tenantId": FABRIKAM, "tenant_name": "old"})
    assert "tenant_name" not in _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT tenant_name", unknown)
    kept = _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUTNEW tenant_name", unknown)
    assert kept["tenant_name"] == ["old"]
    renamed = _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT tenant_name AS customer")
    assert renamed["customer"] == ["c"] and renamed["tenant_name"] == ["old"]
    # Without an output list, every table field but the match fields (and _key).
    every = _extract(f"lookup_t = {LOOKUP} tenant_id AS tenantId")
    assert every["account"] == ["msp"] and every["tenant_name"] == ["c"] and "_key" not in every


def test_lookups_run_after_calculated_fields_and_nothing_before_them_sees_their_output() -> None:
    lines = (
        'EVAL-tid = lower(tenantId)\nEVAL-seen = coalesce(account, "none")\n'
        f"LOOKUP-t = {LOOKUP} tenant_id AS tid OUTPUT account\n"
        f"LOOKUP-u = {LOOKUP} tenant_name AS account OUTPUT tenant_id AS nested"
    )
    fields = _extract(lines)
    assert fields["account"] == ["msp"], "a lookup reads a calculated field"
    assert fields["seen"] == ["none"], "a calculated field never sees a lookup's output"
    assert "nested" not in fields, "no nested automatic lookups"


def test_case_sensitive_match_is_honoured() -> None:
    upper = json.dumps({"tenantId": CONTOSO.upper()})
    assert _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT account", upper)["account"] == ["msp"]
    strict = _conf(f"[{LOOKUP}]\nexternal_type = kvstore\ncollection = c\nfields_list = tenant_id, account\n")
    assert "account" not in _extract(f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT account", upper, strict)


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (f"LOOKUP-t = {LOOKUP} OUTPUT tenant_name", SplunkRuleViolation),  # no match field
        (f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUTNEW", SplunkRuleViolation),  # no output field
        (f"LOOKUP-t = {LOOKUP} tenant_id AS", SplunkRuleViolation),
        (f"LOOKUP-t = {LOOKUP} tenantId OUTPUT tenant_name", SplunkRuleViolation),  # not in fields_list
        (f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId OUTPUT label", SplunkRuleViolation),
        ("LOOKUP-t = no_such_lookup tenant_id AS tenantId OUTPUT tenant_name", UnsupportedProps),
        (f"LOOKUP-t = {LOOKUP} tenant_id AS tenantId, OUTPUT tenant_name", UnsupportedProps),
    ],
)
def test_a_wrong_lookup_stanza_fails(line: str, error: type) -> None:
    with pytest.raises(error):
        _extract(line)


def test_only_kv_store_lookups_are_modelled() -> None:
    csv = _conf("[l]\nfilename = tenants.csv\n")
    with pytest.raises(UnsupportedProps):
        _extract("LOOKUP-t = l tenant_id AS tenantId OUTPUT tenant_name", transforms=csv)


def test_shipped_transforms_lookup_is_the_collection(props: configparser.RawConfigParser) -> None:
    transforms = load_transforms(DEFAULT / "transforms.conf")
    assert transforms.get(LOOKUP, "collection") == "ta_defender_lineage_tenants"
    collections = load_props(DEFAULT / "collections.conf")
    assert {k for k, _ in collections.items("ta_defender_lineage_tenants")} == {
        "field.tenant_id",
        "field.tenant_name",
        "field.account",
    }


# ------------------------------------------ what the per-tenant health panel needs of the interpreter
def test_kv_mode_auto_reads_the_add_ons_log_lines() -> None:
    line = (
        "2026-12-07 16:35:00,123 log_level=ERROR pid=7 tid=tenant_0 file=tenant_runs.py:one:61 | run_failed "
        'input=defender_alerts://mssp tenant_name=refusing tenant=aaaa error_type=AuthError message="no k=v here" x'
    )
    props = _conf("[log]\nKV_MODE = auto\n")
    fields = extract(props, "log", line)
    assert fields["input"] == ["defender_alerts://mssp"] and fields["tenant_name"] == ["refusing"]
    assert fields["message"] == ["no k=v here"] and fields["file"] == ["tenant_runs.py:one:61"]
    assert "k" not in fields, "a key=value inside a quoted value is not a field"


def test_strftime_renders_utc_and_refuses_format_items_it_does_not_model() -> None:
    from tests.harness.searchtime import evaluate, parse_expression

    assert evaluate(parse_expression('strftime(t, "%Y-%m-%d %H:%M:%S")'), {"t": "0"}) == "1970-01-01 00:00:00"
    assert evaluate(parse_expression('strftime(t, "%Y")'), {}) is None
    with pytest.raises(UnsupportedProps):
        evaluate(parse_expression('strftime(t, "%b %d")'), {"t": "0"})
