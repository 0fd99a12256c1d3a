"""The demo's layout helpers: lines within the width, fields and path levels never cut."""

from tools.demo_layout import table, values_blocks, wrap_fields, wrap_path, wrap_tokens

SUMMARY = (
    "run_summary input=defender_alerts://demo status=ok account=demo_tenant "
    "tenant=4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31 resource=alerts_v2 pages=1 events=60 skipped_duplicates=0 "
    "without_key=0 requests=2 token_requests=1 retries=0 throttled=0 restarts=0 tie_rechecks=0 "
    "budget_wait_seconds=0.0 expand_fallback=False stopped_early=False run_seconds=0.04 lag_seconds=109389.1"
)


def test_wrap_fields_keeps_every_field_whole_and_in_order() -> None:
    for width in (50, 60, 109, 120):  # the widest field (tenant=<guid>) is 43
        lines = wrap_fields(SUMMARY, width, "  ")
        assert all(len(line) <= width for line in lines)
        assert " ".join(line.strip() for line in lines) == SUMMARY
        assert all(line.startswith("  ") for line in lines[1:])


def test_a_field_wider_than_the_line_is_elided_whole_and_counted() -> None:
    long_field = "query=" + "x" * 200
    lines = wrap_tokens(["a=1", long_field, "b=2"], 50, "  ")
    assert all(len(line) <= 50 for line in lines)
    text = " ".join(lines)
    assert "a=1" in text and "b=2" in text and "xxx" not in text and "(+1 elided)" in text


def test_wrap_path_breaks_only_before_separators() -> None:
    path = (
        "incident:26466 > azureAdIdentityProtection [azureAdIdentityProtection] | microsoftDefenderForCloudApps "
        "[cloudAppSecurity] | microsoftDefenderForIdentity [microsoftDefenderForIdentity]"
    )
    lines = wrap_path(path, 80, "  ")
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert all(line.strip().startswith(("> ", "| ")) for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == path


def test_a_wide_table_is_split_repeating_its_key_columns() -> None:
    columns = ["#", "layer", *(f"column_{n}_with_a_long_name" for n in range(8))]
    rows = [{c: [f"{c}-value"] for c in columns}]
    text = table(rows, columns, width=120, keys=2)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    headers = [line for line, under in zip(lines, lines[1:]) if under.startswith("-")]
    assert all(h.split()[:2] == ["#", "layer"] for h in headers)
    assert len(headers) >= 2
    for c in columns:
        assert sum(c in h.split() for h in headers) >= 1


def test_values_blocks_wrap_multivalue_cells_within_the_width() -> None:
    values = [f"microsoftDefenderFor{n:02d}Something" for n in range(30)]
    text = values_blocks([{"index": ["main"], "sourcetype": ["st"], "f": values}], ["index", "sourcetype"], ["f"])
    lines = text.splitlines()
    assert lines[0] == "index=main  sourcetype=st"
    assert all(len(line) <= 120 for line in lines)
    shown = " ".join(lines[1:]).replace(",", " ").split()
    assert [v for v in shown if v.startswith("microsoft")] == values
