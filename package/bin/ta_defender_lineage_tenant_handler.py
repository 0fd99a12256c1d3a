"""Tenant REST handler: UCC's generated handler plus the consent check on save.

Saving a tenant (Configuration > Tenants) proves that its account's app registration reaches the
tenant: a token from Entra ID in that tenant, then ``$top=1`` on each Graph security resource (and
the hunting probe when one of the account's inputs is a hunting input). When the app is not
consented there, the refusal gives the exact fix: the admin-consent URL for that tenant, client id
and cloud, and the permissions it grants (defender_lineage_core.account_check.check_tenant). The
message never carries the account's secret, key or the proxy password.

Once splunkd has written the entry (create, edit, enable/disable, delete), the tenants lookup (the KV
store collection behind ``tenant_name`` at search time) is brought in step with it
(defender_lineage_splunk.tenant_lookup); a failure there is logged and does not undo the save.
"""

from typing import Any, Mapping

import import_declare_test  # noqa: F401

from splunktaucclib.rest_handler.admin_external import get_splunkd_endpoint
from splunktaucclib.rest_handler.error import RestError
from ta_defender_lineage_account_handler import USER_AGENT, AccountHandler, _logger, has_hunting_input, read_stanza

from defender_lineage_core.account_check import check_tenant
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.settings import account_from_conf, proxies_from_settings
from defender_lineage_core.tenants import check_tenant_fields
from defender_lineage_splunk.app import ACCOUNT_CONF, SETTINGS_CONF, TENANT_CONF
from defender_lineage_splunk.tenant_lookup import sync_with_change


class TenantHandler(AccountHandler):
    """The account handler's create/edit flow (a check before UCC's write; enabling or disabling skips
    it), with the tenant's own check."""

    def _check(self, creating: bool) -> None:
        payload: Mapping[str, Any] = self.payload or {}
        label = str(self.callerArgs.id or "")
        logger = _logger()
        try:
            check_tenant_fields(label, payload, creating=creating)
            session_key = self.getSessionKey()
            stored = {} if creating else read_stanza(session_key, TENANT_CONF, label)
            values = {**stored, **{k: v for k, v in payload.items() if v is not None}}
            account_name = str(values.get("account") or "").strip()
            account = account_from_conf(account_name, read_stanza(session_key, ACCOUNT_CONF, account_name))
            proxies = proxies_from_settings(read_stanza(session_key, SETTINGS_CONF, "proxy"))
            result = check_tenant(
                account,
                label,
                str(values.get("tenant_id") or ""),
                proxies=proxies,
                hunting=has_hunting_input(session_key, account_name),
                logger=logger,
                user_agent=USER_AGENT,
            )
        except ConfigError as exc:
            logger.warning('tenant_check tenant=%s status=refused message="%s"', label, exc)
            raise RestError(400, str(exc)) from None
        for warning in result.warnings:
            logger.warning('tenant_check tenant=%s status=warning message="%s"', label, warning)
        logger.info(
            "tenant_check tenant=%s status=ok tenant_id=%s account=%s resources=%s seconds=%.2f",
            label,
            result.tenant_id,
            account.name,
            ",".join(sorted(result.resources)),
            result.seconds,
        )

    def _sync_lookup(self, removed: bool) -> None:
        values = None if removed else dict(self.payload or {})
        sync_with_change(self.getSessionKey(), get_splunkd_endpoint(), str(self.callerArgs.id or ""), values, _logger())

    def handleCreate(self, confInfo: Any) -> Any:
        result = super().handleCreate(confInfo)
        self._sync_lookup(removed=False)
        return result

    def handleEdit(self, confInfo: Any) -> Any:
        result = super().handleEdit(confInfo)
        self._sync_lookup(removed=False)
        return result

    def handleRemove(self, confInfo: Any) -> Any:
        result = super().handleRemove(confInfo)
        self._sync_lookup(removed=True)
        return result
