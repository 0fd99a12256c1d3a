"""Text written for users names every input, sourcetype and permission the add-on has.

These texts were written when the add-on had two inputs and kept saying so after the hunting
input came; each check derives the list from the source of truth (globalConfig.json, props.conf,
the Graph permission map), so a fourth input or sourcetype makes them fail until the text follows.
"""

import json
import re
import subprocess
from pathlib import Path

from defender_lineage_core.errors import REQUIRED_PERMISSION

ROOT = Path(__file__).resolve().parents[2]
PACKAGED_README = (ROOT / "package" / "README.txt").read_text()
INPUTS = [s["name"] for s in json.loads((ROOT / "globalConfig.json").read_text())["pages"]["inputs"]["services"]]
SOURCETYPES = re.findall(r"^\[(ms:defender:graph:[a-z]+)\]", (ROOT / "package/default/props.conf").read_text(), re.M)


def test_the_sources_of_truth_list_three_inputs_and_sourcetypes() -> None:
    assert INPUTS == ["defender_alerts", "defender_incidents", "defender_hunting"]
    assert set(SOURCETYPES) >= {"ms:defender:graph:alert", "ms:defender:graph:incident", "ms:defender:graph:hunting"}


def test_packaged_readme_names_every_input_sourcetype_and_permission() -> None:
    for name in [*INPUTS, *SOURCETYPES, *REQUIRED_PERMISSION.values()]:
        assert name in PACKAGED_README, name
    assert "KV store" in PACKAGED_README


def test_appinspect_modular_inputs_reason_names_every_input() -> None:
    reasons = json.loads((ROOT / "tools" / "appinspect_warnings.json").read_text())
    for name in INPUTS:
        assert name in reasons["check_for_modular_inputs"], name


def test_make_help_names_every_input_the_demo_runs() -> None:
    text = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    demo = text.split("make test")[0]
    for name in INPUTS:
        assert name.replace("defender_", "") in demo, name


def test_readme_names_every_permission_and_sourcetype() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in [*SOURCETYPES, *REQUIRED_PERMISSION.values()]:
        assert name in readme, name
