"""One input run over the tenants its ``tenants`` field selects (Tenants tab), concurrently.

Each tenant is collected by ``collect(account, checkpoint_key, label)`` with the input's account
re-pointed at the tenant's id (a multi-tenant app registration reaches each consented tenant with
the same credential), under its own cursor, token, budget share and ``run_summary`` line, on a
bounded pool of worker threads (``TENANT_WORKERS`` in defender_lineage_core/tenants.py), wide because
an idle tenant's poll is mostly waiting; the pages they parse, write and commit at once are fewer
(``PAGE_SLOTS``, defender_lineage_core/page_slots.py), which is what bounds a backfill's memory. The
run's deadline is shared; a tenant waiting on a 429 or a slow Graph holds one worker and no page slot,
never the others.
One tenant's failure is logged as its own ``run_failed`` line and never stops the rest; the run
ends with one ``run_summary scope=run`` line. Pages reach splunkd whole through one stream lock
(defender_lineage_eventstream.write_page).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Callable, Optional, Sequence, TypeVar

from solnlib import log

from defender_lineage_core import settings as cfg
from defender_lineage_core.errors import DefenderLineageError, MissingPermission
from defender_lineage_core.process_tuning import share_heaps_between_threads
from defender_lineage_core.proxy import proxy_auth_message
from defender_lineage_core.tenant_pool import run_each
from defender_lineage_core.tenants import CONSENT_CODES, Tenant, admin_consent_url, select_tenants, worker_count

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

    def one(tenant: Tenant) -> Optional[Stats]:
        reached = dataclasses.replace(account, tenant_id=tenant.tenant_id)
        try:
            return collect(reached, checkpoint_key(input_type, name, tenant.tenant_id), tenant.label)
        except DefenderLineageError as exc:
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
        except Exception as exc:  # a defect met by one tenant must not stop the others
            log.log_exception(
                logger,
                exc,
                "collection",
                msg_before=f"run_failed input={full_name} tenant_name={tenant.label} tenant={tenant.tenant_id}",
            )
        return None

    failed = len(problems)
    last: Optional[Stats] = None
    if tenants:
        share_heaps_between_threads()  # peak memory set by the workers, not by the tenants gone through
        # A finished tenant leaves its count only, not a future and its result (tenant_pool.py).
        tenant_failures, last = run_each(tenants, one, worker_count(os.environ, len(tenants)), "tenant")
        failed += tenant_failures
    log_tenants_summary(logger, full_name, account, len(tenants) + len(problems), failed, started)
    return last if failed == 0 else None
