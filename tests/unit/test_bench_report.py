"""`make bench` prints each part as soon as it is measured, names every missed goal at the end, and
keeps measuring (and printing) the other parts when one fails; only a failed part is an error."""

import sys

import pytest

from tools import bench

COMMAND_REPORT = """| command | records/s |
|---|---:|
| (c) defenderlineage incidents=false | 1,278 |

Goals (issue 4):

- met: (c) within 10% of the constant-fields command: (c)/(b) >= 0.90
- **missed**: (d) within 10% of the constant-fields command: (d)/(b) >= 0.90
"""


def test_each_part_is_printed_before_the_next_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    seen_before_second: list[str] = []

    def second() -> tuple[str, list[str]]:
        seen_before_second.append(capsys.readouterr().out)
        return "SECOND-FIGURES", []

    figures, missed, failed = bench.run_parts(
        [
            ("first", "First", lambda: ("FIRST-FIGURES", ["first: 9,000 events/s (goal: 10,000)"])),
            ("second", "Second", second),
        ]
    )
    assert "FIRST-FIGURES" in seen_before_second[0]
    assert "SECOND-FIGURES" not in seen_before_second[0]
    out = capsys.readouterr().out
    assert out.index("SECOND-FIGURES") < out.index("== Summary")
    summary = out.split("== Summary", 1)[1]
    assert "1 goal(s) MISSED" in summary and "first: 9,000 events/s (goal: 10,000)" in summary
    assert figures == ["First\n\nFIRST-FIGURES", "Second\n\nSECOND-FIGURES"] and failed == []
    assert missed == ["first: 9,000 events/s (goal: 10,000)"]


def test_a_failed_part_keeps_the_figures_of_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    def broken() -> tuple[str, list[str]]:
        raise SystemExit("hunting bench failed")

    figures, _, failed = bench.run_parts(
        [("a", "A", lambda: ("A-FIGURES", [])), ("b", "B", broken), ("c", "C", lambda: ("C-FIGURES", []))]
    )
    out = capsys.readouterr().out
    assert "A-FIGURES" in out and "C-FIGURES" in out
    assert failed == ["b: hunting bench failed"] and len(figures) == 2
    assert "part FAILED: b: hunting bench failed" in out.split("== Summary", 1)[1]


def test_command_goals_missed_reads_the_command_bench_report() -> None:
    assert bench.command_goals_missed(COMMAND_REPORT) == [
        "command: (d) within 10% of the constant-fields command: (d)/(b) >= 0.90"
    ]


TENANTS_REPORT = """| tenants | ... |
- **missed**: tenants: idle cycle 61 s wall at 500 tenants (goal: under 60)
"""


def test_the_tenant_bench_missed_goals_are_named():
    assert bench.tenant_goals_missed(TENANTS_REPORT) == [
        "tenants: idle cycle 61 s wall at 500 tenants (goal: under 60)"
    ]


def test_main_exits_zero_on_a_missed_goal_and_non_zero_only_when_a_part_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    monkeypatch.setattr(bench, "backfill_table", lambda addon, pythons: ("BACKFILL", []))
    monkeypatch.setattr(bench, "hunting_table", lambda addon, python: "HUNTING")
    monkeypatch.setattr(bench, "command_table", lambda addon, python: COMMAND_REPORT)
    monkeypatch.setattr(bench, "tenants_table", lambda addon, pythons: TENANTS_REPORT)
    monkeypatch.setattr(sys, "argv", ["bench.py", "--addon", str(tmp_path), "--python", sys.executable])
    assert bench.main() == 0
    summary = capsys.readouterr().out.split("== Summary", 1)[1]
    assert "(d)/(b) >= 0.90" in summary and "tenants: idle cycle 61 s wall at 500 tenants" in summary

    def broken(addon: object, python: object) -> str:
        raise SystemExit("hunting bench failed")

    monkeypatch.setattr(bench, "hunting_table", broken)
    assert bench.main() == 1
    out = capsys.readouterr().out
    assert "BACKFILL" in out and "Goals (issue 4)" in out
