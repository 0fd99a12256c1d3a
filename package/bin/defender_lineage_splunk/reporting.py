"""The ``run_summary`` line each run ends with: one greppable key=value line an admin (and the
health dashboard) reads. Field names are product API: dashboards and saved searches use them."""

from __future__ import annotations

import logging
import time
from typing import Optional

from defender_lineage_core import settings as cfg
from defender_lineage_core.collector import ResourceSpec, RunStats
from defender_lineage_core.graph_client import GraphClient
from defender_lineage_core.hunting import HuntingStats
from defender_lineage_core.timestamps import TICKS_PER_SECOND, now_ticks


def lag_seconds(newest: Optional[int]) -> str:
    """Seconds between now and the newest item seen; empty when the run saw none."""
    return f"{(now_ticks() - newest) / TICKS_PER_SECOND:.1f}" if newest is not None else ""


def log_listing_summary(
    logger: logging.Logger,
    full_name: str,
    account: cfg.Account,
    spec: ResourceSpec,
    stats: RunStats,
    client: GraphClient,
    started: float,
    ok: bool,
    label: str = "",
) -> None:
    # A Tenants-tab entry's run names its label; the account's own tenant keeps the line it always had.
    named = f" tenant_name={label}" if label else ""
    logger.info(
        "run_summary input=%s status=%s account=%s tenant=%s%s resource=%s pages=%d events=%d "
        "skipped_duplicates=%d without_key=%d bad_items_skipped=%d bad_items_repaired=%d future_items=%d "
        "out_of_range=%d overlap_narrowed=%s requests=%d token_requests=%d retries=%d throttled=%d "
        "restarts=%d tie_rechecks=%d budget_wait_seconds=%.1f expand_fallback=%s stopped_early=%s "
        "run_seconds=%.2f lag_seconds=%s",
        full_name,
        "ok" if ok else "failed",
        account.name,
        account.tenant_id,
        named,
        spec.name,
        stats.pages,
        stats.events,
        stats.skipped,
        stats.without_key,
        stats.bad_skipped,
        stats.bad_repaired,
        stats.future,
        stats.out_of_range,
        stats.narrowed,
        client.stats.requests,
        client.stats.token_requests,
        client.stats.retries,
        client.stats.throttled,
        stats.restarts,
        stats.tie_rechecks,
        client.stats.budget_wait_seconds,
        stats.expand_fallback,
        stats.stopped_early,
        time.monotonic() - started,
        lag_seconds(stats.newest),
    )


def log_hunting_summary(
    logger: logging.Logger,
    full_name: str,
    account: cfg.Account,
    resource: str,
    s: HuntingStats,
    client: GraphClient,
    started: float,
    ok: bool,
    label: str = "",
) -> None:
    named = f" tenant_name={label}" if label else ""
    logger.info(
        "run_summary input=%s status=%s account=%s tenant=%s%s resource=%s rows=%d skipped_duplicates=%d "
        "windows=%d splits=%d caps=%d timeouts=%d truncated=%d bad_items_skipped=%d bad_items_repaired=%d "
        "quota_waits=%d quota_wait_seconds=%.1f "
        "rate_waits=%d quota_deferred=%s requests=%d token_requests=%d retries=%d throttled=%d "
        "budget_wait_seconds=%.1f stopped_early=%s run_seconds=%.2f lag_seconds=%s",
        full_name,
        "ok" if ok else "failed",
        account.name,
        account.tenant_id,
        named,
        resource,
        s.rows,
        s.skipped,
        s.windows,
        s.splits,
        s.caps,
        s.timeouts,
        s.truncated,
        s.bad_skipped,
        s.bad_repaired,
        s.quota_waits,
        s.quota_wait_seconds,
        s.rate_waits,
        s.quota_deferred,
        client.stats.requests,
        client.stats.token_requests,
        client.stats.retries,
        client.stats.throttled,
        client.stats.budget_wait_seconds,
        s.stopped_early,
        time.monotonic() - started,
        lag_seconds(s.newest),
    )


def log_tenants_summary(
    logger: logging.Logger, full_name: str, account: cfg.Account, tenants: int, failed: int, started: float
) -> None:
    """The run's own line when an input collects Tenants-tab entries (each tenant has its own line too)."""
    logger.info(
        "run_summary input=%s scope=run status=%s account=%s tenants=%d tenants_failed=%d run_seconds=%.2f",
        full_name,
        "ok" if failed == 0 else "failed",
        account.name,
        tenants,
        failed,
        time.monotonic() - started,
    )
