"""Graph-simulator fixtures the unit modules share (one definition instead of one per module).

* ``module_sim``: one simulator per test module (module scope: a server per module, not per test),
  over ``sim_tenant`` (seed 7 unless the module overrides ``sim_tenant``).
* ``sim``: that simulator for one test, reset before and after it (faults, recorded requests, roles,
  clock, hunting settings), so each test meets it as new whatever the test before it did. A module
  whose tests change what the reset does not undo (customer tenants, revoked tokens, a verifier)
  overrides ``sim`` with ``fresh_sim``, so that scope never grows past what it was.
* ``fresh_sim``: a simulator of the test's own (seed 3), stopped when the test ends.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.harness.graph_sim import DEFAULT_ROLES, GraphSimulator, SyntheticTenant
from tests.harness.graph_sim.hunting import HuntingSettings


@pytest.fixture(scope="module")
def sim_tenant() -> SyntheticTenant:
    return SyntheticTenant.generate(seed=7)


@pytest.fixture(scope="module")
def module_sim(sim_tenant: SyntheticTenant) -> Iterator[GraphSimulator]:
    with GraphSimulator(sim_tenant, max_lifetime=180) as server:
        yield server


def reset(server: GraphSimulator) -> None:
    """What a test may change on a shared simulator, back to how the simulator started."""
    server.faults.clear()
    server.forget_requests()  # a request from the test before, answered late, is not counted as this one's
    server.set_roles(*DEFAULT_ROLES)
    server.set_clock(server.tenant.anchor_ticks)
    server.hunting.__dict__.update(HuntingSettings().__dict__)


@pytest.fixture
def sim(module_sim: GraphSimulator) -> Iterator[GraphSimulator]:
    reset(module_sim)
    yield module_sim
    reset(module_sim)


@pytest.fixture
def fresh_sim() -> Iterator[GraphSimulator]:
    with GraphSimulator(SyntheticTenant.generate(seed=3), max_lifetime=300.0) as server:
        yield server
