"""A loopback stand-in for Entra ID and the Microsoft Graph security API (tests only).

from tests.harness.graph_sim import GraphSimulator, SyntheticTenant, FaultPlan

tenant = SyntheticTenant.generate(seed=7)
with GraphSimulator(tenant) as sim:
    sim.base_url, sim.tenant_id, sim.client_id, sim.client_secret
"""

from .faults import FaultContext, FaultPlan, FaultRule
from .server import (
    DEFAULT_CLIENT_ID,
    DEFAULT_ROLES,
    GraphSimulator,
    RequestRecord,
    default_assertion_verifier,
)
from .tenant import DEFAULT_TENANT_ID, ItemVersion, SyntheticTenant

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_ROLES",
    "DEFAULT_TENANT_ID",
    "FaultContext",
    "FaultPlan",
    "FaultRule",
    "GraphSimulator",
    "ItemVersion",
    "RequestRecord",
    "SyntheticTenant",
    "default_assertion_verifier",
]
