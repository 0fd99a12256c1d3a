"""Splunk side of the ``defender_hunting`` input: settings, checkpoint, events and logs around
``defender_lineage_core.hunting``.

The UCC-generated ``bin/defender_hunting.py`` calls ``defender_hunting_helper``, which calls
``stream_events`` here. One event per result row: the row (types normalised) as JSON plus
``QueryName`` (the input's name), sourcetype ``ms:defender:graph:hunting``, ``_time`` from the
row's ``Timestamp``, ``source = ms_graph://<tenant>/security/runHuntingQuery/<input name>``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict, List, Optional

from defender_lineage_eventstream import write_page, xml_text
from solnlib import log
from splunklib import modularinput as smi

from defender_lineage_core import settings as cfg
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.graph_client import TIMEOUT_ENV, timeout_from_environment
from defender_lineage_core.hunting import (
    HUNTING_TIMEOUT_SECONDS,
    RESOURCE,
    HuntingRun,
    HuntingState,
    Row,
    check_query,
    parse_lookback,
)
from defender_lineage_core.tenants import parse_tenants_field
from defender_lineage_core.timestamps import TICKS_PER_SECOND, epoch_seconds, now_ticks
from defender_lineage_splunk.clients import hunting_budget, run_client
from defender_lineage_splunk.inputs import INPUT_KINDS, checkpoint_key, source_for
from defender_lineage_splunk.reporting import log_hunting_summary
from defender_lineage_splunk.run_handles import RunHandles
from defender_lineage_splunk.splunkd import SplunkSettings, logger_for
from defender_lineage_splunk.stanzas import run_stanzas
from defender_lineage_splunk.tenant_lookup import reconcile_from_conf
from defender_lineage_splunk.tenant_runs import run_tenants

INPUT_TYPE = "defender_hunting"
SOURCETYPE = INPUT_KINDS[INPUT_TYPE].sourcetype
# Test knobs in splunkd's environment (not settings): smaller caps so the simulator can show a split.
ROW_CAP_ENV = "TA_DEFENDER_LINEAGE_HUNTING_ROW_CAP"
SIZE_CAP_ENV = "TA_DEFENDER_LINEAGE_HUNTING_SIZE_CAP"


class HuntingSink:
    """Writes rows as events; the same XML as ``EventSink`` (splunklib's, byte for byte)."""

    def __init__(self, writer: smi.EventWriter, index: str, source: str) -> None:
        self.writer = writer
        self.tail = (
            f"<source>{xml_text(source)}</source><sourcetype>{xml_text(SOURCETYPE)}</sourcetype>"
            f"<index>{xml_text(index)}</index>"
        )

    def __call__(self, batch: List[Row]) -> None:
        fallback = epoch_seconds(now_ticks())
        parts = []
        for row in batch:
            when = epoch_seconds(row.ticks) if row.ticks is not None else fallback
            parts.append(
                f'<event unbroken="1"><time>{when}</time>{self.tail}'
                f"<data>{xml_text(row_text(row.item))}</data><done /></event>"
            )
        write_page(self.writer, "".join(parts))


def row_text(item: Dict[str, Any]) -> str:
    """Single-line JSON, safe in UTF-8 XML 1.0 (lone surrogates become escapes)."""
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(item, ensure_ascii=True, separators=(",", ":"))
    if "\ufffe" in text or "\uffff" in text:
        return json.dumps(item, ensure_ascii=True, separators=(",", ":"))
    return text


def _int_env(name: str) -> Optional[int]:
    text = (os.environ.get(name) or "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def stream_events(inputs: smi.InputDefinition, event_writer: smi.EventWriter) -> None:
    logger = logger_for(INPUT_TYPE)

    def run(metadata: Dict[str, Any], params: Dict[str, Any], name: str) -> None:
        run_hunting(metadata, params, name, event_writer, logger)  # a bad query fails its run, named

    run_stanzas(inputs, INPUT_TYPE, run, logger)


def run_hunting(
    metadata: Dict[str, Any],
    params: Dict[str, Any],
    name: str,
    event_writer: smi.EventWriter,
    logger: logging.Logger,
) -> Any:
    started = time.monotonic()
    splunk = SplunkSettings(metadata["session_key"], metadata["server_uri"])
    logger.setLevel(splunk.log_level())
    # tenant_name at search time follows the Tenants tab, even a conf file a deployer pushed (tenant_lookup.py).
    reconcile_from_conf(splunk, logger)
    full_name = f"{INPUT_TYPE}://{name}"
    log.modular_input_start(logger, full_name)
    try:
        query = check_query(params.get("query"))
        lookback = parse_lookback(params.get("lookback"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    account = splunk.account(str(params.get("account") or ""))

    handles = RunHandles(splunk)

    def hunt(reached: cfg.Account, key: str, label: str) -> Any:
        return _hunt_tenant(handles, params, name, query, lookback, reached, key, label, event_writer, logger, started)

    wanted = parse_tenants_field(params.get("tenants"))
    if wanted is None:
        # The account's own tenant, under the cursor key inputs have always used (no re-ingest on upgrade).
        stats = hunt(account, checkpoint_key(INPUT_TYPE, name), "")
    else:
        stats = run_tenants(splunk, logger, INPUT_TYPE, name, account, wanted, hunt, started)
    log.modular_input_end(logger, full_name)
    return stats


def _hunt_tenant(
    handles: RunHandles,
    params: Dict[str, Any],
    name: str,
    query: str,
    lookback: int,
    account: cfg.Account,
    key: str,
    label: str,
    event_writer: smi.EventWriter,
    logger: logging.Logger,
    started: float,
) -> Any:
    """One tenant's hunting run (``account.tenant_id``) under the cursor ``key``; ``handles``: what the run's
    tenants share (run_handles.py)."""
    splunk = handles.splunk
    full_name = f"{INPUT_TYPE}://{name}"
    interval = cfg.interval_seconds(params.get("interval") or 300)
    timeout = (
        timeout_from_environment(os.environ) if (os.environ.get(TIMEOUT_ENV) or "").strip() else HUNTING_TIMEOUT_SECONDS
    )
    deadline = started + interval
    client = run_client(
        splunk,
        account,
        logger,
        deadline,
        full_name,
        timeout=timeout,
        session=handles.graph_session(),
        stanza_tenants=handles.stanza_tenants,
    )
    budget = hunting_budget(splunk, account, full_name, logger, handles.stanza_tenants)
    store = handles.checkpointer()
    state = HuntingState.from_json(store.get(key), account.tenant_id)
    if state is None:
        state = HuntingState(account.tenant_id)
        logger.info("first_run input=%s tenant=%s lookback_s=%d", full_name, account.tenant_id, lookback)
    index = str(params.get("index") or "default")
    sink = HuntingSink(event_writer, index, source_for(account.tenant_id, f"{RESOURCE}/{name}"))

    def emit(batch: List[Row]) -> None:
        sink(batch)
        log.events_ingested(logger, full_name, SOURCETYPE, len(batch), index, account=account.name)

    def save(current: HuntingState) -> None:
        store.update(key, current.to_json())

    now = now_ticks()
    options: Dict[str, Any] = {}
    for option, env in (("row_cap", ROW_CAP_ENV), ("size_cap", SIZE_CAP_ENV)):
        value = _int_env(env)
        if value is not None:
            options[option] = value
    run = HuntingRun(
        client,
        query,
        name,
        state,
        emit,
        save,
        first_start=now - lookback * TICKS_PER_SECOND,
        now=now_ticks,
        deadline=deadline,
        budget=budget,
        logger=logger,
        **options,
    )
    ok = False
    try:
        stats = run.run()
        ok = True
    finally:
        log_hunting_summary(logger, full_name, account, RESOURCE, run.stats, client, started, ok, label)
    return stats


def validate_input(definition: smi.ValidationDefinition) -> None:
    """Called by splunkd when a hunting input is saved: refuse bad values, naming the field."""
    params = definition.parameters
    try:
        check_query(params.get("query"))
        parse_lookback(params.get("lookback"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if params.get("interval"):
        cfg.interval_seconds(params.get("interval"))
    parse_tenants_field(params.get("tenants"))
