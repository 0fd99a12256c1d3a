"""Account REST handler: UCC's generated handler plus the checks that span several fields.

UCC's per-field validators already refuse a malformed GUID; this adds what they cannot express
(a secret for client_secret, certificate and key for certificate, URLs for the custom cloud) and
then the account check: a token from Entra ID and one ``$top=1`` call to each Graph security
resource, through the add-on's proxy. An account that cannot reach Graph is refused when it is
saved, with a message saying what to fix (defender_lineage_core.account_check). The message never
carries the secret, the key or the proxy password.
"""

import logging
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlsplit

import import_declare_test  # noqa: F401

from solnlib import conf_manager, log
from splunktaucclib.rest_handler.admin_external import AdminExternalHandler, get_splunkd_endpoint
from splunktaucclib.rest_handler.error import RestError

from defender_lineage_core.account_check import check_saved_account
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.redaction import install_redaction
from defender_lineage_core.settings import check_account_fields, proxies_from_settings

APP = "TA-defender-lineage"
REST_ROOT = "ta_defender_lineage"
USER_AGENT = f"{APP}/0.1 (Splunk add-on; account check)"


def _logger() -> logging.Logger:
    # $SPLUNK_HOME/var/log/splunk/ta_defender_lineage_account_check.log; a log that cannot be opened
    # must not stop an admin from saving an account.
    try:
        log.Logs.set_context(namespace=REST_ROOT, root_logger_log_file="main")
        return install_redaction(log.Logs().get_logger("account_check"))
    except OSError:
        return install_redaction(logging.getLogger("ta_defender_lineage.account_check"))


def _conf_manager(session_key: str, realm: Optional[str] = None) -> conf_manager.ConfManager:
    parts = urlsplit(get_splunkd_endpoint())
    return conf_manager.ConfManager(
        session_key,
        APP,
        realm=realm,
        scheme=parts.scheme or "https",
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8089,
    )


def read_stanza(session_key: str, conf: str, stanza: str) -> Dict[str, Any]:
    """A stanza of one of the add-on's conf files, encrypted fields decrypted; {} when absent."""
    manager = _conf_manager(session_key, realm=f"__REST_CREDENTIAL__#{APP}#configs/conf-{conf}")
    try:
        return dict(manager.get_conf(conf).get(stanza))
    except (conf_manager.ConfStanzaNotExistException, conf_manager.ConfManagerException):
        return {}


def has_hunting_input(session_key: str, account: str) -> bool:
    """Whether a ``defender_hunting`` input (enabled or not) uses this account: then the check also
    proves ThreatHunting.Read.All. An inputs.conf that cannot be read counts as no."""
    manager = _conf_manager(session_key)
    try:
        stanzas = manager.get_conf("inputs").get_all()
    except Exception:  # the account check must not fail on it
        return False
    return any(
        name.startswith("defender_hunting://") and str((fields or {}).get("account") or "").strip() == account
        for name, fields in stanzas.items()
    )


class AccountHandler(AdminExternalHandler):
    def _check(self, creating: bool) -> None:
        payload: Mapping[str, Any] = self.payload or {}
        name = str(self.callerArgs.id or "")
        logger = _logger()
        try:
            check_account_fields(payload, creating=creating)
            session_key = self.getSessionKey()
            stored = {} if creating else read_stanza(session_key, f"{REST_ROOT}_account", name)
            proxies = proxies_from_settings(read_stanza(session_key, f"{REST_ROOT}_settings", "proxy"))
            hunting = not creating and has_hunting_input(session_key, name)
            result = check_saved_account(
                name, payload, stored, proxies=proxies, logger=logger, user_agent=USER_AGENT, hunting=hunting
            )
        except ConfigError as exc:
            logger.warning('account_check account=%s status=refused message="%s"', name, exc)
            raise RestError(400, str(exc)) from None
        for warning in result.warnings:
            logger.warning('account_check account=%s status=warning message="%s"', name, warning)
        logger.info(
            "account_check account=%s status=ok tenant=%s resources=%s seconds=%.2f",
            name,
            result.tenant_id,
            ",".join(sorted(result.resources)),
            result.seconds,
        )

    def handleCreate(self, confInfo: Any) -> Any:
        self._check(creating=True)
        return super().handleCreate(confInfo)

    def handleEdit(self, confInfo: Any) -> Any:
        if (self.payload or {}).get("disabled") is None:
            self._check(creating=False)
        return super().handleEdit(confInfo)
