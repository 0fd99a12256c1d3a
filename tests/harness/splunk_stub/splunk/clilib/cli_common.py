"""Test-only stand-in for ``splunk.clilib.cli_common`` (what splunktaucclib.cim_actions imports)."""

from __future__ import annotations

import os


def getConfKeyValue(conf: str, stanza: str, key: str) -> str:
    """Only ``server.conf [general] serverName`` is asked for (the CAM ``worker`` field)."""
    if (conf, stanza, key) == ("server", "general", "serverName"):
        return os.environ.get("SPLUNK_SERVER_NAME", "splunkd-standin")
    raise KeyError(f"{conf}.conf [{stanza}] {key} is not in the stand-in")
