"""Splunk side of the response actions ``defender_update_incident`` and ``defender_update_alert``.

UCC generates ``bin/<action>.py`` (a ``splunktaucclib`` ModularAlertBase: splunkd runs it with
``--execute`` and the JSON payload on stdin); its ``process_event`` calls the action's helper
module, which calls :func:`run_action` here. The logic is in
``defender_lineage_core.response_actions``; this module only:

* reads the parameters, the results file (through the base class) and the accounts (solnlib, as
  the inputs do), and picks each target's account by its tenant;
* gives each account a Graph client the way the inputs get theirs (``defender_lineage_splunk.clients``:
  retries, Retry-After, deadline, and a share of the app's per-tenant request budget);
* writes one ``ms:defender:graph:action`` audit event per attempt with the Common Action Model's
  ``addevent``/``writeevents``: a stash file in ``$SPLUNK_HOME/var/spool/splunk`` that splunkd
  indexes (Splunk's ``stash_common_action_model`` handling sets the sourcetype from the event's
  header). No REST endpoint and no capability is needed, so an analyst running the action ad hoc
  from Incident Review gets the audit too;
* writes an updated incident's new state to the incident store at once, so ``defenderlineage``
  shows it before the next poll.

Nothing here logs or audits a token, a secret or the session key.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

from defender_lineage_kvstore import IncidentStoreClient, IncidentStoreError

from defender_lineage_core.errors import DefenderLineageError
from defender_lineage_core.graph_client import GraphClient
from defender_lineage_core.incident_store import docs_from_incident
from defender_lineage_core.response_actions import (
    INCIDENT,
    PREFER_ALL_ENUMS,
    ActionInputError,
    Attempt,
    HttpAnswer,
    Kind,
    Send,
    Target,
    act,
    is_true,
    new_client_request_id,
    parse_change,
    parse_max_targets,
    plan_targets,
)
from defender_lineage_splunk.clients import run_client
from defender_lineage_splunk.splunkd import SplunkSettings

AUDIT_SOURCETYPE = "ms:defender:graph:action"
DEFAULT_AUDIT_INDEX = "main"
STORE_ORIGIN = "actions"  # the incident store documents this writer owns (incident_store.py)
# An action run must end well inside alert_actions.conf's maxtime (5 minutes by default).
RUN_SECONDS = 240.0


class _Accounts:
    """The configured accounts, and one Graph client per account for the run."""

    def __init__(self, splunk: SplunkSettings, helper: Any) -> None:
        self.splunk = splunk
        self.helper = helper
        self.stanzas: Dict[str, Any] = splunk.accounts()
        self._clients: Dict[str, GraphClient] = {}
        self.started = time.monotonic()

    def default_tenant(self, account: str) -> Optional[str]:
        if account:
            return str((self.stanzas.get(account) or {}).get("tenant_id") or "") or None
        tenants = {str(f.get("tenant_id") or "").strip().lower() for f in self.stanzas.values()}
        tenants.discard("")
        return next(iter(tenants)) if len(tenants) == 1 else None

    def for_tenant(self, tenant_id: str, account: str) -> str:
        """The account to act in ``tenant_id`` with: ``account`` when set (it must be that tenant's),
        else the first (by name) configured for the tenant."""
        if account:
            fields = self.stanzas.get(account)
            if fields is None:
                raise DefenderLineageError(f"account '{account}' is not configured in the add-on")
            if str(fields.get("tenant_id") or "").strip().lower() != tenant_id.lower():
                raise DefenderLineageError(
                    f"account '{account}' is for tenant {fields.get('tenant_id')}, not {tenant_id}: "
                    "leave account empty to pick the tenant's account"
                )
            return account
        matching = sorted(
            name
            for name, f in self.stanzas.items()
            if str(f.get("tenant_id") or "").strip().lower() == tenant_id.lower()
        )
        if not matching:
            raise DefenderLineageError(f"no account is configured for tenant {tenant_id}")
        return matching[0]

    def client(self, name: str) -> GraphClient:
        if name not in self._clients:
            # The inputs' client path: credential, proxy, timeout, and a share of the per-app-and-tenant
            # budget with this run counted as one more sharer (two when splunkd cannot list the inputs).
            self._clients[name] = run_client(
                self.splunk,
                self.splunk.account(name),
                self.helper.logger,
                self.started + RUN_SECONDS,
                "response_action",
                sharing_if_unknown=2,
            )
        return self._clients[name]


def _sender(client: GraphClient, kind: Kind) -> Send:
    def send(method: str, path: str, body: Optional[Dict[str, Any]]) -> HttpAnswer:
        url = f"{client.endpoints.graph_root}/v1.0/security/{path}"
        headers = {
            "Accept": "application/json",
            "Prefer": PREFER_ALL_ENUMS,
            "client-request-id": new_client_request_id(),
        }
        kwargs: Dict[str, Any] = {}
        if body is not None:
            kwargs["json"] = body
        # A comment POST is not idempotent: a 5xx is answered, not retried (429 still waits and retries:
        # Graph did not take the request).
        fail_fast = frozenset({500, 502, 503, 504}) if method == "POST" else frozenset()
        response = client.send_with_token(method, url, kind.resource, headers, fail_fast=fail_fast, **kwargs)
        try:
            parsed = json.loads(response.content) if response.content else None
        except ValueError:
            parsed = None
        return HttpAnswer(response.status_code, parsed, response.headers.get("request-id", ""))

    return send


def _context(helper: Any, account: str) -> Dict[str, Any]:
    return {
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "search_name": str(helper.search_name or ""),
        "owner": str(helper.settings.get("owner") or helper.user or ""),
        "app": str(helper.app or ""),
        "sid": str(helper.sid or ""),
        "action_mode": str(getattr(helper, "action_mode", "") or ""),
        "account": account,
    }


def _audit(helper: Any, record: Dict[str, Any], row: Optional[Mapping[str, Any]]) -> None:
    if row is not None:
        helper.update(dict(row))  # orig_rid of the result row the attempt acted for (ES Incident Review)
    helper.addevent(json.dumps(record, sort_keys=False, separators=(", ", ": ")), sourcetype=AUDIT_SOURCETYPE)


def _refused(kind: Kind, helper: Any, message: str, field: str) -> Dict[str, Any]:
    return {
        **_context(helper, str(helper.configuration.get("account") or "")),
        "response_action": kind.action,
        "outcome": "refused",
        "dry_run": is_true(helper.configuration.get("dry_run")),
        "target_type": kind.target_type,
        "field": field,
        "message": message,
        "http_status": 0,
    }


def _save_to_store(helper: Any, attempts: List[Tuple[Attempt, str]]) -> None:
    docs = [
        doc
        for attempt, _ in attempts
        if attempt.kind is INCIDENT and attempt.outcome in ("updated", "partial") and attempt.after
        for doc in docs_from_incident(attempt.after, attempt.tenant_id, origin=STORE_ORIGIN)
    ]
    if not docs:
        return
    try:
        IncidentStoreClient(helper.session_key, helper.settings.get("server_uri") or "").save(docs)
    except IncidentStoreError as exc:
        helper.logger.warning('incident_store_save_failed action=%s error="%s"', attempts[0][0].kind.action, exc)


def run_action(helper: Any, kind: Kind) -> int:
    """The whole run; 0 when every attempt succeeded (or changed nothing), 2 otherwise."""
    params: Dict[str, Any] = dict(helper.configuration)
    account_param = str(params.get("account") or "").strip()
    index = str(params.get("index") or "").strip() or DEFAULT_AUDIT_INDEX
    dry_run = is_true(params.get("dry_run"))
    rows = list(helper.get_events())
    try:
        change = parse_change(kind, params)
        max_targets = parse_max_targets(params.get("max_targets"))
        splunk = SplunkSettings(helper.session_key, helper.settings.get("server_uri") or "")
        accounts = _Accounts(splunk, helper)
        plan = plan_targets(kind, rows, params, accounts.default_tenant(account_param), max_targets)
    except ActionInputError as exc:
        helper.message(f"refused: {exc}", status="failure")
        _audit(helper, _refused(kind, helper, str(exc), exc.field), rows[0] if rows else None)
        helper.writeevents(index=index, source=kind.action)
        return 2
    attempts: List[Tuple[Attempt, str]] = []
    for target in plan.targets:
        attempts.append(_attempt(helper, kind, accounts, target, change, account_param, dry_run))
    for (attempt, account), target in zip(attempts, plan.targets):
        record = {**_context(helper, account), **attempt.record(), "result_rows": len(target.rows)}
        _audit(helper, record, rows[target.rows[0]] if rows and target.rows[0] < len(rows) else None)
        helper.message(
            f"{kind.target_type} {attempt.target_id} tenant {attempt.tenant_id}: {attempt.outcome}",
            status="failure" if attempt.outcome in ("failed", "partial", "refused") else "success",
        )
    if plan.skipped_over_cap:
        message = (
            f"stopped after {len(plan.targets)} {kind.target_type}s (max_targets): "
            f"{plan.skipped_over_cap} more were not acted on"
        )
        helper.message(message, status="failure")
        record = {**_refused(kind, helper, message, "max_targets"), "outcome": "capped"}
        record["skipped_targets"] = plan.skipped_over_cap
        _audit(helper, record, None)
    helper.writeevents(index=index, source=kind.action)
    if not dry_run:
        _save_to_store(helper, attempts)
    failed = plan.skipped_over_cap or any(a.outcome in ("failed", "partial") for a, _ in attempts)
    helper.logger.info(
        "action_summary action=%s targets=%d duplicate_rows=%d skipped_over_cap=%d failed=%d dry_run=%s",
        kind.action,
        len(plan.targets),
        plan.duplicate_rows,
        plan.skipped_over_cap,
        sum(1 for a, _ in attempts if a.outcome in ("failed", "partial")),
        dry_run,
    )
    return 2 if failed else 0


def _attempt(
    helper: Any, kind: Kind, accounts: _Accounts, target: Target, change: Any, account_param: str, dry_run: bool
) -> Tuple[Attempt, str]:
    try:
        account = accounts.for_tenant(target.tenant_id, account_param)
        client = accounts.client(account)
    except DefenderLineageError as exc:
        attempt = Attempt(kind, target.tenant_id, target.target_id, change.requested(), dry_run)
        attempt.outcome = "failed"
        attempt.message = str(exc)
        return attempt, account_param
    return act(kind, target, change, _sender(client, kind), dry_run), account
