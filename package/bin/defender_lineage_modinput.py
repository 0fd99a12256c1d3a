"""The alerts and incidents run: settings, checkpoint, events and logs around the core's listing.

The UCC-generated scripts (bin/defender_alerts.py, bin/defender_incidents.py) call the helper
modules, which call ``stream_events`` here. Everything that knows about Graph lives in
``defender_lineage_core``; what every input kind shares on the Splunk side (conf files, stanza
loop, registry, summaries) lives in ``defender_lineage_splunk``. This module wires one listing run:
the cursor in the KV store, the XML event stream, the incident store and the budget.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Dict, List, Optional

from defender_lineage_eventstream import EventSink
from defender_lineage_kvstore import IncidentStoreClient, IncidentStoreError
from solnlib import log
from splunklib import modularinput as smi

from defender_lineage_core import settings as cfg
from defender_lineage_core.collector import Collection, CursorState, ResourceSpec, RunStats, Version
from defender_lineage_core.incident_store import Doc, docs_from_items
from defender_lineage_core.page_commits import PageCommitter
from defender_lineage_core.page_slots import PageSlots
from defender_lineage_core.tenants import PAGE_SLOTS, parse_tenants_field
from defender_lineage_core.timestamps import now_ticks
from defender_lineage_splunk.clients import run_client
from defender_lineage_splunk.inputs import INPUT_KINDS, checkpoint_key, source_for
from defender_lineage_splunk.reporting import log_listing_summary
from defender_lineage_splunk.run_handles import RunHandles
from defender_lineage_splunk.splunkd import SplunkSettings, logger_for
from defender_lineage_splunk.stanzas import run_stanzas
from defender_lineage_splunk.tenant_lookup import reconcile_from_conf
from defender_lineage_splunk.tenant_runs import run_tenants


def stream_events(
    inputs: smi.InputDefinition, event_writer: smi.EventWriter, input_type: str, spec: ResourceSpec
) -> None:
    logger = logger_for(input_type)

    def run(metadata: Dict[str, Any], params: Dict[str, Any], name: str) -> None:
        run_one(metadata, params, input_type, name, spec, event_writer, logger)

    run_stanzas(inputs, input_type, run, logger)


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
    # tenant_name at search time follows the Tenants tab, even a conf file a deployer pushed (tenant_lookup.py).
    reconcile_from_conf(splunk, logger)
    full_name = f"{input_type}://{name}"
    log.modular_input_start(logger, full_name)
    account = splunk.account(str(params.get("account") or ""))
    if input_type == "defender_incidents" and cfg.is_true(params.get("expand_alerts")):
        spec = dataclasses.replace(spec, expand="alerts")
    run = _ListingRun(metadata, params, input_type, name, spec, event_writer, logger, splunk, started)
    wanted = parse_tenants_field(params.get("tenants"))
    if wanted is None:
        # The account's own tenant, under the cursor key inputs have always used (no re-ingest on upgrade).
        stats = run.collect(account, checkpoint_key(input_type, name), label="")
    else:
        run.page_slots = PageSlots(PAGE_SLOTS)  # many tenants wait at once; few pages are held at once
        stats = run_tenants(splunk, logger, input_type, name, account, wanted, run.collect, started)
    log.modular_input_end(logger, full_name)
    return stats


class _ListingRun:
    """What one stanza's run shares across its tenants: settings, writer, logger, start time, and the
    handles (run_handles.py) plus one incident-store client."""

    def __init__(
        self,
        metadata: Dict[str, Any],
        params: Dict[str, Any],
        input_type: str,
        name: str,
        spec: ResourceSpec,
        event_writer: smi.EventWriter,
        logger: logging.Logger,
        splunk: SplunkSettings,
        started: float,
    ) -> None:
        self.metadata = metadata
        self.params = params
        self.input_type = input_type
        self.name = name
        self.full_name = f"{input_type}://{name}"
        self.spec = spec
        self.event_writer = event_writer
        self.logger = logger
        self.splunk = splunk
        self.started = started
        self.handles = RunHandles(splunk)
        # Set for a run over Tenants-tab entries (defender_lineage_core/page_slots.py); a run of the
        # account's own tenant is bounded by its one thread and keeps its page-recycling as it was.
        self.page_slots: Optional[PageSlots] = None

    def collect(self, account: cfg.Account, key: str, label: str) -> Optional[RunStats]:
        """One tenant (``account.tenant_id``) under the cursor ``key``; ``label`` names a Tenants-tab entry."""
        params, spec, logger, splunk, full_name = self.params, self.spec, self.logger, self.splunk, self.full_name
        started = self.started
        interval = cfg.interval_seconds(params.get("interval") or 300)
        # Request budget, deadline and HTTP timeout (defender_lineage_core/budget.py explains the bound).
        client = run_client(
            splunk,
            account,
            logger,
            started + interval,
            full_name,
            session=self.handles.graph_session(),
            stanza_tenants=self.handles.stanza_tenants,
        )
        client.page_slots = self.page_slots
        store = self.handles.checkpointer()
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
        sourcetype = INPUT_KINDS[self.input_type].sourcetype
        sink = EventSink(self.event_writer, index, sourcetype, source_for(account.tenant_id, spec.name))

        # The incident store feeds defenderlineage's enrichment on this Splunk instance; deployments
        # whose inputs run elsewhere rebuild it with the shipped saved search instead.
        incident_store = self.handles.once(
            "incident_store", lambda: IncidentStoreClient(self.metadata["session_key"], self.metadata["server_uri"])
        )

        def save_docs(docs: List[Doc]) -> None:
            try:
                incident_store.save(docs)
            except IncidentStoreError as exc:
                # The events are written (or will be); failing the run would write them again next time.
                logger.warning('incident_store_save_failed input=%s error="%s"', full_name, exc)

        def emit(batch: List[Version]) -> None:
            docs = docs_from_items(spec.name, [v.item for v in batch], account.tenant_id)
            committer.page(sink.render(batch), docs)
            log.events_ingested(logger, full_name, sourcetype, len(batch), index, account=account.name)

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
        committer: PageCommitter[List[Doc]] = PageCommitter(
            # Over many tenants a page keeps its slot until committed (page_slots.py).
            sink.write,
            save_docs,
            lambda cursor: store.update(key, cursor),
            settle=self.page_slots is not None,
        )
        try:
            with committer:
                stats = collection.run()
        finally:
            failure = committer.unreported_failure
            if failure is not None:
                stats = None
                logger.error(
                    'checkpoint_save_failed input=%s error_type=%s message="%s"',
                    full_name,
                    type(failure).__name__,
                    failure,
                )
            log_listing_summary(
                logger, full_name, account, spec, collection.stats, client, started, ok=stats is not None, label=label
            )
        return stats


def validate_input(definition: smi.ValidationDefinition) -> None:
    """Called by splunkd when an input is saved: refuse bad values, naming the field."""
    params = definition.parameters
    cfg.start_ticks(params.get("start_date"), now_ticks())
    if params.get("interval"):
        cfg.interval_seconds(params.get("interval"))
    parse_tenants_field(params.get("tenants"))
