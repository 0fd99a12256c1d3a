"""The stanza loop every input kind shares."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict

from solnlib import log
from splunklib import modularinput as smi

from defender_lineage_core import process_tuning
from defender_lineage_core.errors import DefenderLineageError
from defender_lineage_core.proxy import proxy_auth_message


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
