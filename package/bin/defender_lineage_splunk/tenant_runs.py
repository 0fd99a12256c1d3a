"""One input run over the tenants its ``tenants`` field selects (Tenants tab), one after another.

Each tenant is collected by ``collect(account, checkpoint_key, label)`` with the input's account
re-pointed at the tenant's id (a multi-tenant app registration reaches each consented tenant with
the same credential), under its own cursor. One tenant's failure is logged as its own
``run_failed`` line and never stops the next; the run ends with one ``run_summary scope=run`` line.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Optional, Sequence, TypeVar

from defender_lineage_core import settings as cfg
from defender_lineage_core.errors import DefenderLineageError, MissingPermission
from defender_lineage_core.proxy import proxy_auth_message
from defender_lineage_core.tenants import CONSENT_CODES, admin_consent_url, select_tenants

from .inputs import checkpoint_key
from .reporting import log_tenants_summary
from .splunkd import SplunkSettings

Stats = TypeVar("Stats")


def run_tenants(
    splunk: SplunkSettings,
    logger: logging.Logger,
    input_type: str,
    name: str,
    account: cfg.Account,
    wanted: Sequence[str],
    collect: Callable[[cfg.Account, str, str], Optional[Stats]],
    started: float,
) -> Optional[Stats]:
    """The last tenant's stats, or None when any selected tenant failed."""
    full_name = f"{input_type}://{name}"
    tenants, problems = select_tenants(wanted, account.name, splunk.tenants())
    for problem in problems:
        logger.error('run_failed input=%s error_type=ConfigError message="%s"', full_name, problem)
    failed = len(problems)
    stats: Optional[Stats] = None
    for tenant in tenants:
        reached = dataclasses.replace(account, tenant_id=tenant.tenant_id)
        try:
            stats = collect(reached, checkpoint_key(input_type, name, tenant.tenant_id), tenant.label)
        except DefenderLineageError as exc:
            stats = None
            message = proxy_auth_message() if getattr(exc, "status", 0) == 407 else str(exc)
            if getattr(exc, "code", "") in CONSENT_CODES or isinstance(exc, MissingPermission):
                # The exact fix, as the Tenants tab gives it on save (its check lists the permissions).
                url = admin_consent_url(reached.endpoints.login_root, reached.tenant_id, reached.client_id)
                message += f" Admin consent for this tenant: {url}"
            logger.error(
                'run_failed input=%s tenant_name=%s tenant=%s error_type=%s message="%s"',
                full_name,
                tenant.label,
                tenant.tenant_id,
                type(exc).__name__,
                message,
            )
        if stats is None:
            failed += 1
    log_tenants_summary(logger, full_name, account, len(tenants) + len(problems), failed, started)
    return stats if failed == 0 else None
