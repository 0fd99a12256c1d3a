"""Minimal stand-in for Splunk's ``splunk.admin`` (it exists only inside splunkd).

Enough for splunktaucclib's REST handlers to import, so tests can check that the add-on's
handler modules load on every interpreter. It does not run handlers: splunkd does that.
"""

from typing import Any

ACTION_CREATE = 1
ACTION_EDIT = 2
ACTION_REMOVE = 4
ACTION_LIST = 16
CONTEXT_APP_ONLY = 1


class ArgValidationException(Exception):
    pass


class MConfigHandler:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("the splunk.admin stand-in cannot run REST handlers; splunkd does")


def init(handler: Any, context: Any) -> None:
    raise NotImplementedError("the splunk.admin stand-in cannot run REST handlers; splunkd does")
