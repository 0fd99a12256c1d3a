"""A Graph client for one run on the Splunk side: the account's credential and proxy, the run's
deadline, the HTTP timeout, and this run's share of the Graph request budget.

Every caller (the listing inputs, the hunting input, the response actions) gets its client here, so
the budget is counted one way: the enabled inputs of the same app registration in the same tenant,
through their account or their ``tenants`` field (``inputs.count_sharing_inputs``), the running
stanza always among them. ``defender_lineage_core/budget.py`` explains the bound.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Set

from defender_lineage_core import settings as cfg
from defender_lineage_core.budget import RequestBudget, budget_per_minute, input_share, shared_budget
from defender_lineage_core.graph_client import GraphClient, timeout_from_environment
from defender_lineage_core.hunting import hunting_per_minute

from .inputs import count_hunting_inputs, count_sharing_inputs

if TYPE_CHECKING:  # splunkd.py needs solnlib (the built lib/); the budget's counting does not
    from .splunkd import SplunkSettings


def run_client(
    splunk: SplunkSettings,
    account: cfg.Account,
    logger: logging.Logger,
    deadline: float,
    own_stanza: str,
    timeout: Optional[float] = None,
    sharing_if_unknown: int = 1,
    session: Any = None,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> GraphClient:
    """The account's client for a run ending at ``deadline`` (a ``time.monotonic()`` value).

    ``own_stanza`` is counted among the budget's sharers (``response_action`` for an action, which
    shares with the inputs); ``sharing_if_unknown`` when splunkd cannot list the inputs. ``timeout``:
    seconds per HTTP read, by default ``TA_DEFENDER_LINEAGE_HTTP_TIMEOUT`` or 60. ``session``: the HTTP
    session a run's tenants share (``run_handles.py``; tokens stay per request); ``stanza_tenants``: the
    run's memo of the tenant ids each input stanza reaches (``inputs.count_sharing_inputs``).
    """
    from .splunkd import graph_client  # here, not at the top: see the TYPE_CHECKING import

    client = graph_client(account, splunk.proxies(), logger, session=session)
    client.deadline = deadline
    client.timeout = timeout if timeout is not None else timeout_from_environment(os.environ)
    attach_budget(client, splunk, account, own_stanza, logger, sharing_if_unknown, stanza_tenants)
    return client


def attach_budget(
    client: GraphClient,
    splunk: SplunkSettings,
    account: cfg.Account,
    own_stanza: str,
    logger: logging.Logger,
    sharing_if_unknown: int = 1,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> None:
    """This run's share of the app's per-tenant Graph budget; none when the budget is off."""
    per_minute = budget_per_minute(os.environ)
    if per_minute is None:
        return
    try:
        stanzas = splunk.input_stanzas()
        tenants = splunk.tenants_used_by(stanzas)
        sharing = count_sharing_inputs(
            stanzas, splunk.accounts(), account.tenant_id, account.client_id, own_stanza, tenants, stanza_tenants
        )
    except Exception as exc:  # the budget must not stop collection: assume this run is (nearly) alone
        sharing = sharing_if_unknown
        logger.warning(
            "budget_inputs_unknown input=%s error_type=%s: %s",
            own_stanza,
            type(exc).__name__,
            "counting this input only" if sharing == 1 else f"assuming {sharing} sharers",
        )
    client.budget = shared_budget(account.client_id, account.tenant_id, input_share(per_minute, sharing))
    logger.info(
        "request_budget input=%s account=%s tenant=%s sharing_inputs=%d requests_per_minute=%.1f",
        own_stanza,
        account.name,
        account.tenant_id,
        sharing,
        client.budget.per_minute_bound(),
    )


def hunting_budget(
    splunk: SplunkSettings,
    account: cfg.Account,
    own_stanza: str,
    logger: logging.Logger,
    stanza_tenants: Optional[Dict[str, Set[str]]] = None,
) -> Optional[RequestBudget]:
    """The tenant's advanced-hunting quota shared by the enabled hunting inputs querying it (any app
    registration: the quota is the tenant's); None when the hunting budget is off."""
    per_minute = hunting_per_minute(os.environ)
    if per_minute is None:
        return None
    try:
        stanzas = splunk.input_stanzas()
        sharing = count_hunting_inputs(
            stanzas,
            splunk.accounts(),
            account.tenant_id,
            own_stanza,
            splunk.tenants_used_by(stanzas),
            stanza_tenants,
        )
    except Exception as exc:  # the budget must not stop collection: assume this input is alone
        logger.warning("hunting_budget_inputs_unknown input=%s error_type=%s", own_stanza, type(exc).__name__)
        sharing = 1
    # Keyed by tenant only: the hunting quota is the tenant's, whatever the app registration.
    budget = shared_budget("runHuntingQuery", account.tenant_id, per_minute / max(1, sharing))
    logger.info(
        "hunting_budget input=%s tenant=%s sharing_inputs=%d calls_per_minute=%.1f",
        own_stanza,
        account.tenant_id,
        sharing,
        budget.per_minute_bound(),
    )
    return budget
