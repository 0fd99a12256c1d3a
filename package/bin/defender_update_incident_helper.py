"""UCC alert action helper for ``defender_update_incident``: the generated bin/defender_update_incident.py calls
``process_event``; defender_lineage_actions.py and defender_lineage_core/response_actions.py do the work."""

from typing import Any

from defender_lineage_actions import run_action

from defender_lineage_core.response_actions import INCIDENT


def process_event(helper: Any, *args: Any, **kwargs: Any) -> int:
    return run_action(helper, INCIDENT)
