"""Customer tenants reached by one multi-tenant app registration, and the ``tenants`` field of an input.

A tenant entry (Configuration > Tenants) is a label, a tenant id and the account whose credential
reaches it. An input's ``tenants`` field is empty (the account's own tenant: the behaviour before
tenants existed, same cursor), ``*`` (every enabled tenant of the input's account) or a
comma-separated list of labels. Plain data in, plain data out: the Splunk side reads the conf files.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import REQUIRED_PERMISSION, ConfigError
from .settings import GUID, is_true

# Entra's answers to a token request in a tenant where the app is not consented (no service
# principal there), from the Entra error-code reference
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes):
# AADSTS7000229 "the client application is missing service principal in the tenant",
# AADSTS700016 "application ... was not found in the directory ... not installed by the administrator
# of the tenant or consented to", AADSTS65001 "the user or administrator has not consented".
CONSENT_CODES = ("AADSTS7000229", "AADSTS700016", "AADSTS65001")
# Threads collecting tenants at once. An idle tenant's poll is waiting (a token, a page with nothing
# new: ~0.2 s each on a real network, ~5 ms of CPU), so many wait together: 32 polled 500 tenants x 2
# resources in well under a minute at 0.2 s a Graph answer where 8 took about one (docs/performance.md).
TENANT_WORKERS = 32
WORKERS_ENV = "TA_DEFENDER_LINEAGE_TENANT_WORKERS"  # test and benchmark knob in splunkd's environment
# Pages parsed, written and committed at once across those workers (page_slots.py): what a backfill's
# peak memory follows (~20 MB a page of 1,000 alerts at its peak). Parsing holds the GIL, so more pages
# at once do not go faster: 100 tenants x 1,000 alerts took the same ~6.8 s with 2, 4 or 8 slots (32
# workers), peaking at ~120, ~165 and ~250 MB; eight workers without slots peaked at ~180 to ~200.
PAGE_SLOTS = 4


def worker_count(environ: Mapping[str, str], tenants: int) -> int:
    text = (environ.get(WORKERS_ENV) or "").strip()
    wanted = int(text) if text.isdigit() and int(text) > 0 else TENANT_WORKERS
    return max(1, min(wanted, tenants))


def connection_pool_size(environ: Mapping[str, str]) -> int:
    """Idle connections a run's shared HTTP session keeps per host: each worker's tenant has at most two
    requests in flight (a page and the next one prefetched), plus one for a token request."""
    return 2 * worker_count(environ, sys.maxsize) + 1


LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ALL = "*"


@dataclass(frozen=True)
class Tenant:
    label: str
    tenant_id: str
    account: str


def check_label(label: str) -> None:
    if not LABEL.match(label or ""):
        raise ConfigError(
            f"tenant label {label!r} must be 1 to 64 letters, digits, '_' or '-' (it is shown to analysts as "
            "tenant_name)."
        )


def check_tenant_fields(label: str, values: Mapping[str, Any], creating: bool) -> None:
    """Refuse a tenant entry as it is saved; each message names the field."""
    check_label(label)
    if "tenant_id" in values or creating:
        if not GUID.match(str(values.get("tenant_id") or "").strip()):
            raise ConfigError("tenant_id must be a GUID such as 4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31.")
    if "account" in values or creating:
        if not str(values.get("account") or "").strip():
            raise ConfigError("account is required: the account whose app registration reaches this tenant.")


def parse_tenants_field(value: Any) -> Optional[Tuple[str, ...]]:
    """None for an empty field (the account's own tenant), ``("*",)`` for every tenant of the account,
    else the labels in order, without repeats. A malformed label is refused, named."""
    text = str(value or "").strip()
    if not text:
        return None
    if text == ALL:
        return (ALL,)
    labels: List[str] = []
    for piece in text.split(","):
        label = piece.strip()
        if label == ALL:
            raise ConfigError("tenants: '*' stands alone (every tenant of the input's account), not in a list.")
        check_label(label)
        if label not in labels:
            labels.append(label)
    return tuple(labels)


def select_tenants(
    wanted: Sequence[str], account: str, entries: Mapping[str, Mapping[str, Any]]
) -> Tuple[List[Tenant], List[str]]:
    """The tenants an input collects, and a message for each listed label it cannot collect.

    ``entries``: tenant stanzas by label. ``*`` takes every enabled tenant whose account is the
    input's; a listed label must exist, be enabled and belong to the input's account (its
    credential is the one the input uses). A label it cannot collect never stops the others.
    """
    chosen: List[Tenant] = []
    problems: List[str] = []

    def entry(label: str, fields: Mapping[str, Any]) -> Tenant:
        return Tenant(label, str(fields.get("tenant_id") or "").strip().lower(), str(fields.get("account") or ""))

    if tuple(wanted) == (ALL,):
        for label in sorted(entries):
            fields = entries[label]
            if str(fields.get("account") or "").strip() == account and not is_true(fields.get("disabled")):
                chosen.append(entry(label, fields))
        return chosen, problems
    for label in wanted:
        found = entries.get(label)
        if found is None:
            problems.append(f"tenant '{label}' is not configured on the Tenants tab")
        elif is_true(found.get("disabled")):
            problems.append(f"tenant '{label}' is disabled on the Tenants tab")
        elif str(found.get("account") or "").strip() != account:
            problems.append(
                f"tenant '{label}' is reached through account '{found.get('account')}', not this input's account "
                f"'{account}'"
            )
        else:
            chosen.append(entry(label, found))
    return chosen, problems


def admin_consent_url(login_root: str, tenant_id: str, client_id: str) -> str:
    """Where a Global Administrator (or Privileged Role Administrator) of the customer tenant grants the
    app's application permissions tenant-wide (Microsoft identity platform, "admin consent" endpoint:
    https://learn.microsoft.com/entra/identity-platform/v2-admin-consent)."""
    return f"{login_root.rstrip('/')}/{tenant_id}/adminconsent?client_id={client_id}"


def permissions_for(resources: Sequence[str]) -> List[str]:
    """The Microsoft Graph application permissions the resources need, in order, without repeats."""
    out: List[str] = []
    for resource in resources:
        permission = REQUIRED_PERMISSION.get(resource)
        if permission and permission not in out:
            out.append(permission)
    return out


def tenant_name_rows(entries: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, str]]:
    """What the tenants lookup holds for Tenants-tab entries (by label): one row per tenant id, keyed by
    it (lowercase), with ``tenant_name`` (the label) and ``account``.

    Disabled entries count (their events stay searchable and keep their name). When two labels name
    the same tenant id, one row must win, the same way every time: an enabled entry over a disabled
    one, then the first label in sort order. An entry without a GUID tenant id names nothing.
    """
    rows: Dict[str, Dict[str, str]] = {}
    ranked = sorted(entries.items(), key=lambda item: (is_true(item[1].get("disabled")), item[0]))
    for label, fields in ranked:
        tenant_id = str(fields.get("tenant_id") or "").strip().lower()
        if not GUID.match(tenant_id) or tenant_id in rows:
            continue
        rows[tenant_id] = {
            "_key": tenant_id,
            "tenant_id": tenant_id,
            "tenant_name": label,
            "account": str(fields.get("account") or "").strip(),
        }
    return rows
