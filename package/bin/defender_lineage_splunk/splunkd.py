"""splunkd as the inputs see it: its address, the add-on's conf files (solnlib), the input logger."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar
from urllib.parse import urlsplit

import requests
from solnlib import conf_manager, log
from solnlib.modular_input import checkpointer
from splunklib import binding, client

from defender_lineage_core import settings as cfg
from defender_lineage_core.credentials import credential_for
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.graph_client import GraphClient, account_session, client_for_account
from defender_lineage_core.redaction import install_redaction

from .app import ACCOUNT_CONF, APP, CHECKPOINT_COLLECTION, REST_ROOT, SETTINGS_CONF, TENANT_CONF, USER_AGENT

T = TypeVar("T")
SPLUNKD_TIMEOUT_SECONDS = 60.0  # a REST read this add-on makes itself; a splunkd that hangs must not hang the run


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
    """The add-on's conf files, with encrypted fields decrypted by solnlib.

    One instance serves one run, whatever its number of tenants: each conf file is fetched once and
    each whole-file read (proxies, input stanzas, accounts, tenants) is kept for the run, under a lock,
    so tenants collected at once neither race on splunklib's handles nor repeat the REST calls.
    """

    def __init__(self, session_key: str, server_uri: str) -> None:
        self.session_key = session_key
        self.scheme, self.host, self.port = splunkd_address(server_uri)
        self._confs: Dict[str, conf_manager.ConfFile] = {}
        self._lock = threading.RLock()
        self._reads: Dict[str, Any] = {}

    def _once(self, name: str, read: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._reads:
                self._reads[name] = read()  # an exception is not kept: the next caller asks again
            return self._reads[name]

    def _conf(self, conf: str) -> conf_manager.ConfFile:
        with self._lock:
            return self._conf_locked(conf)

    def _conf_locked(self, conf: str) -> conf_manager.ConfFile:
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
            with self._lock:
                return dict(self._conf(conf).get(name))
        except conf_manager.ConfStanzaNotExistException:
            return {}
        except conf_manager.ConfManagerException:
            return {}

    def account(self, name: str) -> cfg.Account:
        return cfg.account_from_conf(name, self.stanza(ACCOUNT_CONF, name))

    def log_level(self) -> str:
        level = str(self.stanza(SETTINGS_CONF, "logging").get("loglevel") or "INFO").upper()
        return level if level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL") else "INFO"

    def proxies(self) -> Dict[str, str]:
        return self._once("proxies", lambda: cfg.proxies_from_settings(self.stanza(SETTINGS_CONF, "proxy")))

    def input_stanzas(self) -> Dict[str, Any]:
        """Every input stanza splunkd knows (inputs.conf), to count the inputs sharing an account."""
        return self._once("inputs", lambda: dict(self._conf("inputs").get_all()))

    def accounts(self) -> Dict[str, Any]:
        return self._once("accounts", lambda: dict(self._conf(ACCOUNT_CONF).get_all(only_current_app=True)))

    def tenants(self) -> Dict[str, Any]:
        """Tenants-tab entries by label; none when the conf file does not exist yet."""
        return self._once("tenants", lambda: self._plain_stanzas(TENANT_CONF))

    def _plain_stanzas(self, conf: str) -> Dict[str, Dict[str, Any]]:
        """Every stanza of this app's ``conf``, from splunkd's JSON answer, for a file that may hold hundreds
        of stanzas and has no encrypted field (the Tenants tab). solnlib's ``get_all`` reads the Atom XML
        feed into an ElementTree: ~17 MB held at once for 500 tenant entries, which set the input's peak
        RSS (an idle run's RSS then grew with the tenant count). {} when the file does not exist yet."""
        service = client.Service(
            token=self.session_key,
            app=APP,
            owner="nobody",
            scheme=self.scheme,
            host=self.host,
            port=self.port,
            autologin=False,
            handler=binding.handler(timeout=SPLUNKD_TIMEOUT_SECONDS),
        )
        try:
            response = service.get(f"configs/conf-{conf}", output_mode="json", count=0, search=f"eai:acl.app={APP}")
        except binding.HTTPError as error:
            if error.status == 404:
                return {}
            raise
        entries = json.loads(response.body.read()).get("entry") or []
        # The stanza's own fields; splunkd's eai:* metadata (permissions...) is not kept for the run.
        return {
            str(entry["name"]): {k: v for k, v in (entry.get("content") or {}).items() if not k.startswith("eai:")}
            for entry in entries
            if entry.get("name")
        }

    def tenants_used_by(self, input_stanzas: Dict[str, Any]) -> Dict[str, Any]:
        """Tenants-tab entries when any input stanza has a ``tenants`` field, else {} without asking
        splunkd (solnlib logs a traceback for a conf file that does not exist yet)."""
        if any(str((fields or {}).get("tenants") or "").strip() for fields in input_stanzas.values()):
            return self.tenants()
        return {}

    def checkpointer(self) -> checkpointer.KVStoreCheckpointer:
        return checkpointer.KVStoreCheckpointer(
            CHECKPOINT_COLLECTION, self.session_key, APP, scheme=self.scheme, host=self.host, port=self.port
        )


def graph_client(
    account: cfg.Account, proxies: Dict[str, str], logger: logging.Logger, session: Optional[requests.Session] = None
) -> GraphClient:
    """``session``: one already set up for this account (account_session), e.g. shared by the tenants of a run."""
    # A client secret, or a certificate: the key and certificate are parsed and matched here (a bad one
    # fails the run with a message naming the field), and a fresh PS256 assertion signs each token request.
    session = session if session is not None else account_session(proxies, USER_AGENT)
    return client_for_account(account, credential_for(account), session, logger=logger)
