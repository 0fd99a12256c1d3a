"""What every tenant of one input run shares instead of building it again.

An idle tenant's poll is a token and a page request; before these were shared, building its own HTTP
session (new connections to Graph), KV store checkpointer (which looks its collection up: two splunkd
round trips) and incident-store client, and counting the inputs that share its budget over every
Tenants-tab entry, were most of its CPU (docs/performance.md, "Many tenants").
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, Dict, Set, TypeVar

import requests
from solnlib.modular_input import checkpointer

from defender_lineage_core.graph_client import account_session
from defender_lineage_core.tenants import connection_pool_size
from defender_lineage_core.transport import share_between_tenants

from .app import USER_AGENT
from .splunkd import SplunkSettings

T = TypeVar("T")


class RunHandles:
    def __init__(self, splunk: SplunkSettings) -> None:
        self.splunk = splunk
        # Tenant ids each input stanza reaches, worked out once per run (inputs.count_sharing_inputs).
        self.stanza_tenants: Dict[str, Set[str]] = {}
        self._lock = threading.Lock()
        self._made: Dict[str, Any] = {}

    def once(self, name: str, make: Callable[[], T]) -> T:
        """``make()``'s result, made once for the run (a failure is not kept: the next tenant tries again)."""
        with self._lock:
            if name not in self._made:
                self._made[name] = make()
            return self._made[name]

    def graph_session(self) -> requests.Session:
        """One session to Entra ID and Graph for every tenant of the run: they use one account, so one
        proxy, one Graph host, one TLS set-up (``share_between_tenants`` says what keeps tokens apart)."""
        return self.once(
            "graph_session",
            lambda: share_between_tenants(
                account_session(self.splunk.proxies(), USER_AGENT), connection_pool_size(os.environ)
            ),
        )

    def checkpointer(self) -> checkpointer.KVStoreCheckpointer:
        return self.once("checkpointer", self.splunk.checkpointer)
