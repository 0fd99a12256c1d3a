"""JSON nested deeper than the parser goes, wherever the add-on parses Graph's answers (issue 12,
item 3): a clear refusal or a value kept as text, never an uncaught RecursionError."""

from __future__ import annotations

import pytest

from defender_lineage_core import hunting
from defender_lineage_core.account_check import AccountCheckError, check_account
from defender_lineage_core.errors import MalformedResponse
from tests.harness.graph_sim import GraphSimulator
from tests.unit.test_account_check import account

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def sim(fresh_sim: GraphSimulator) -> GraphSimulator:
    return fresh_sim  # one simulator per test, as before: tests here change what a reset does not undo


def test_a_dynamic_hunting_column_nested_too_deep_is_kept_as_text():
    assert hunting.normalise_value("dynamic", DEEP) == DEEP


def test_a_hunting_row_nested_too_deep_is_skipped_and_a_deep_envelope_is_a_malformed_response():
    # A row no parser reads whole is one bad row (skipped, reported), as a listing's item is; the answer stands.
    rows, _schema, bad = hunting.read_answer(('{"schema":[],"results":' + DEEP + "}").encode())
    assert rows == [] and [(b.position, b.reason, b.repaired) for b in bad] == [(0, "nesting_too_deep", False)]
    with pytest.raises(MalformedResponse, match="not JSON"):
        hunting.read_answer(('{"schema":' + DEEP + ',"results":[]}').encode())


def test_the_account_checks_hunting_probe_survives_an_answer_nested_too_deep(sim):
    sim.faults.add(200, resource="runHuntingQuery", body=('{"results":' + DEEP + "}").encode())
    with pytest.raises(AccountCheckError):
        check_account(account(sim), timeout=5.0, hunting=True)


def test_a_graph_error_body_nested_too_deep_still_gives_the_refusal(sim):
    sim.faults.add(403, resource="alerts_v2", body=('{"error":' + DEEP + "}").encode(), times=None)
    with pytest.raises(AccountCheckError) as caught:
        check_account(account(sim), timeout=5.0)
    assert caught.value.kind == "missing_permission"  # what a 403 means, body readable or not
