"""Splunk side of the Graph inputs: settings, checkpoint, events and logs around the core.

The UCC-generated scripts (bin/defender_alerts.py, bin/defender_incidents.py) call the helper
modules, which call ``stream_events`` here. Everything that knows about Graph lives in
``defender_lineage_core``; this module only reads Splunk's configuration (through solnlib),
keeps the cursor in the KV store, writes the XML event stream and logs.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from defender_lineage_eventstream import EventSink
from defender_lineage_kvstore import IncidentStoreClient, IncidentStoreError
from solnlib import conf_manager, log
from solnlib.modular_input import checkpointer
from splunklib import modularinput as smi

from defender_lineage_core import process_tuning
from defender_lineage_core import settings as cfg
from defender_lineage_core.budget import budget_per_minute, count_sharing_inputs, input_share, shared_budget
from defender_lineage_core.collector import Collection, CursorState, ResourceSpec, RunStats, Version
from defender_lineage_core.credentials import credential_for
from defender_lineage_core.errors import ConfigError, DefenderLineageError
from defender_lineage_core.graph_client import (
    GraphClient,
    account_session,
    client_for_account,
    timeout_from_environment,
)
from defender_lineage_core.incident_store import Doc, docs_from_items
from defender_lineage_core.page_commits import PageCommitter
from defender_lineage_core.proxy import proxy_auth_message
from defender_lineage_core.redaction import install_redaction
from defender_lineage_core.timestamps import TICKS_PER_SECOND, now_ticks

APP = "TA-defender-lineage"
REST_ROOT = "ta_defender_lineage"
CHECKPOINT_COLLECTION = f"{REST_ROOT}_checkpoints"
USER_AGENT = f"{APP}/0.1 (Splunk add-on; +https://splunkbase.splunk.com)"


def splunkd_address(server_uri: str) -> Tuple[str, str, int]:
    """scheme, host and port of splunkd, from the input definition's ``server_uri``."""
    parts = urlsplit(server_uri)
    if not parts.scheme or not parts.hostname:
        raise ConfigError(f"the input definition's server_uri is not a URL: {server_uri!r}")
    return parts.scheme, parts.hostname, parts.port or 8089


def logger_for(input_type: str) -> logging.Logger:
    # One file per input type: $SPLUNK_HOME/var/log/splunk/ta_defender_lineage_<input_type>.log
    log.Logs.set_context(namespace=REST_ROOT, root_logger_log_file="main")
    return install_redaction(log.Logs().get_logger(input_type))


class SplunkSettings:
    """The add-on's conf files, with encrypted fields decrypted by solnlib."""

    def __init__(self, session_key: str, server_uri: str) -> None:
        self.session_key = session_key
        self.scheme, self.host, self.port = splunkd_address(server_uri)
        self._confs: Dict[str, conf_manager.ConfFile] = {}

    def _conf(self, conf: str) -> conf_manager.ConfFile:
        # One handle per conf file for the run (the settings file is read for two stanzas).
        if conf not in self._confs:
            manager = conf_manager.ConfManager(
                self.session_key,
                APP,
                realm=f"__REST_CREDENTIAL__#{APP}#configs/conf-{conf}",
                scheme=self.scheme,
                host=self.host,
                port=self.port,
            )
            self._confs[conf] = manager.get_conf(conf)
        return self._confs[conf]

    def stanza(self, conf: str, name: str) -> Dict[str, Any]:
        try:
            return dict(self._conf(conf).get(name))
        except conf_manager.ConfStanzaNotExistException:
            return {}
        except conf_manager.ConfManagerException:
            return {}

    def account(self, name: str) -> cfg.Account:
        return cfg.account_from_conf(name, self.stanza(f"{REST_ROOT}_account", name))

    def log_level(self) -> str:
        level = str(self.stanza(f"{REST_ROOT}_settings", "logging").get("loglevel") or "INFO").upper()
        return level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"

    def proxies(self) -> Dict[str, str]:
        return cfg.proxies_from_settings(self.stanza(f"{REST_ROOT}_settings", "proxy"))

    def input_stanzas(self) -> Dict[str, Any]:
        """Every input stanza splunkd knows (inputs.conf), to count the inputs sharing an account."""
        return dict(self._conf("inputs").get_all())

    def accounts(self) -> Dict[str, Any]:
        return dict(self._conf(f"{REST_ROOT}_account").get_all(only_current_app=True))

    def checkpointer(self) -> checkpointer.KVStoreCheckpointer:
        return checkpointer.KVStoreCheckpointer(
            CHECKPOINT_COLLECTION, self.session_key, APP, scheme=self.scheme, host=self.host, port=self.port
        )


def source_for(tenant_id: str, resource: str) -> str:
    """``source`` of an event: tenant and Graph resource (the lineage command reads the tenant back)."""
    return f"ms_graph://{tenant_id}/security/{resource}"


def graph_client(account: cfg.Account, proxies: Dict[str, str], logger: logging.Logger) -> GraphClient:
    # A client secret, or a certificate: the key and certificate are parsed and matched here (a bad one
    # fails the run with a message naming the field), and a fresh PS256 assertion signs each token request.
    return client_for_account(account, credential_for(account), account_session(proxies, USER_AGENT), logger=logger)


def stream_events(
    inputs: smi.InputDefinition, event_writer: smi.EventWriter, input_type: str, spec: ResourceSpec
) -> None:
    logger = logger_for(input_type)

    def run(metadata: Dict[str, Any], params: Dict[str, Any], name: str) -> None:
        run_one(metadata, params, input_type, name, spec, event_writer, logger)

    run_stanzas(inputs, input_type, run, logger)


def run_stanzas(
    inputs: smi.InputDefinition,
    input_type: str,
    run: Callable[[Dict[str, Any], Dict[str, Any], str], Any],
    logger: logging.Logger,
) -> None:
    """``run(metadata, params, name)`` for each stanza of the input definition (splunkd sends one).

    A failed run logs one ``run_failed`` line that an admin can act on (no secrets in it) and does
    not stop the next stanza.
    """
    process_tuning.tune_for_bulk_parsing()  # the process is this input's alone: see process_tuning.py
    for stanza, params in inputs.inputs.items():
        name = stanza.split("://", 1)[-1]
        try:
            run(inputs.metadata, params, name)
        except DefenderLineageError as exc:
            # A 407 comes from the proxy, not from Entra or Graph: say so rather than blame the account.
            message = proxy_auth_message() if getattr(exc, "status", 0) == 407 else str(exc)
            logger.error(
                'run_failed input=%s://%s error_type=%s message="%s"', input_type, name, type(exc).__name__, message
            )
        except Exception as exc:
            log.log_exception(logger, exc, "collection", msg_before=f"run_failed input={input_type}://{name}")


def run_one(
    metadata: Dict[str, Any],
    params: Dict[str, Any],
    input_type: str,
    name: str,
    spec: ResourceSpec,
    event_writer: smi.EventWriter,
    logger: logging.Logger,
) -> Optional[RunStats]:
    started = time.monotonic()
    splunk = SplunkSettings(metadata["session_key"], metadata["server_uri"])
    logger.setLevel(splunk.log_level())
    full_name = f"{input_type}://{name}"
    log.modular_input_start(logger, full_name)
    account = splunk.account(str(params.get("account") or ""))
    interval = cfg.interval_seconds(params.get("interval") or 300)
    if input_type == "defender_incidents" and cfg.is_true(params.get("expand_alerts")):
        spec = ResourceSpec(spec.name, spec.sourcetype, spec.page_size, expand="alerts")
    client = graph_client(account, splunk.proxies(), logger)
    # Request budget, deadline and HTTP timeout (defender_lineage_core/budget.py explains the bound).
    client.deadline = started + interval
    client.timeout = timeout_from_environment(os.environ)
    _attach_budget(client, splunk, account, full_name, logger)
    store = splunk.checkpointer()
    key = cfg.checkpoint_key(input_type, name)
    state = CursorState.from_json(store.get(key), account.tenant_id)
    if state is None:
        state = CursorState(account.tenant_id)
        logger.info(
            "first_run input=%s tenant=%s start_date=%s",
            full_name,
            account.tenant_id,
            params.get("start_date") or "7 days back",
        )
    start = cfg.start_ticks(params.get("start_date"), now_ticks())
    index = str(params.get("index") or "default")
    sink = EventSink(event_writer, index, spec.sourcetype, source_for(account.tenant_id, spec.name))

    pages_logged = [0]

    # The incident store feeds defenderlineage's enrichment on this Splunk instance; deployments
    # whose inputs run elsewhere rebuild it with the shipped saved search instead.
    incident_store = IncidentStoreClient(metadata["session_key"], metadata["server_uri"])

    def save_docs(docs: List[Doc]) -> None:
        try:
            incident_store.save(docs)
        except IncidentStoreError as exc:
            # The events are written (or will be); failing the run would write them again next time.
            logger.warning('incident_store_save_failed input=%s error="%s"', full_name, exc)

    def emit(batch: List[Version]) -> None:
        docs = docs_from_items(spec.name, [v.item for v in batch], account.tenant_id)
        committer.page(sink.render(batch), docs)
        pages_logged[0] += 1
        log.events_ingested(logger, full_name, spec.sourcetype, len(batch), index, account=account.name)

    def save(current: CursorState) -> None:
        committer.cursor(current.to_json())

    collection = Collection(
        client,
        spec,
        state,
        emit,
        save,
        start_ticks=start,
        # A run stops paging once its interval is spent; the cursor is kept for the next run.
        deadline=lambda: time.monotonic() - started > interval,
        logger=logger,
    )
    stats: Optional[RunStats] = None
    # Each page's documents and cursor are saved on worker threads while the next page is prepared;
    # defender_lineage_core/page_commits.py says why no guarantee is lost.
    committer: PageCommitter[List[Doc]] = PageCommitter(sink.write, save_docs, lambda cursor: store.update(key, cursor))
    try:
        with committer:
            stats = collection.run()
    finally:
        failure = committer.unreported_failure
        if failure is not None:
            stats = None
            logger.error(
                'checkpoint_save_failed input=%s error_type=%s message="%s"', full_name, type(failure).__name__, failure
            )
        _log_summary(logger, full_name, account, spec, collection.stats, client, started, ok=stats is not None)
    log.modular_input_end(logger, full_name)
    return stats


def _attach_budget(
    client: GraphClient, splunk: SplunkSettings, account: cfg.Account, full_name: str, logger: logging.Logger
) -> None:
    """This process's share of the app's Graph budget (defender_lineage_core/budget.py explains the bound)."""
    per_minute = budget_per_minute(os.environ)
    if per_minute is None:
        return
    try:
        sharing = count_sharing_inputs(
            splunk.input_stanzas(), splunk.accounts(), account.tenant_id, account.client_id, full_name
        )
    except Exception as exc:  # the budget must not stop collection: assume this input is alone
        logger.warning(
            "budget_inputs_unknown input=%s error_type=%s: counting this input only", full_name, type(exc).__name__
        )
        sharing = 1
    client.budget = shared_budget(account.client_id, account.tenant_id, input_share(per_minute, sharing))
    logger.info(
        "request_budget input=%s account=%s tenant=%s sharing_inputs=%d requests_per_minute=%.1f",
        full_name,
        account.name,
        account.tenant_id,
        sharing,
        client.budget.per_minute_bound(),
    )


def _log_summary(
    logger: logging.Logger,
    full_name: str,
    account: cfg.Account,
    spec: ResourceSpec,
    stats: RunStats,
    client: GraphClient,
    started: float,
    ok: bool,
) -> None:
    lag = ""
    if stats.newest is not None:
        lag = f"{(now_ticks() - stats.newest) / TICKS_PER_SECOND:.1f}"
    logger.info(
        "run_summary input=%s status=%s account=%s tenant=%s resource=%s pages=%d events=%d "
        "skipped_duplicates=%d without_key=%d bad_items_skipped=%d bad_items_repaired=%d future_items=%d "
        "out_of_range=%d overlap_narrowed=%s requests=%d token_requests=%d retries=%d throttled=%d "
        "restarts=%d tie_rechecks=%d budget_wait_seconds=%.1f expand_fallback=%s stopped_early=%s "
        "run_seconds=%.2f lag_seconds=%s",
        full_name,
        "ok" if ok else "failed",
        account.name,
        account.tenant_id,
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
        lag,
    )


def validate_input(definition: smi.ValidationDefinition) -> None:
    """Called by splunkd when an input is saved: refuse bad values, naming the field."""
    params = definition.parameters
    cfg.start_ticks(params.get("start_date"), now_ticks())
    if params.get("interval"):
        cfg.interval_seconds(params.get("interval"))
