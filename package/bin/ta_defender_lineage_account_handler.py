"""Account REST handler: UCC's generated handler plus the checks that span several fields.

UCC's per-field validators already refuse a malformed GUID; this adds what they cannot express
(a secret for client_secret, certificate and key for certificate, URLs for the custom cloud) so
that a bad account is refused when it is saved, with a message naming the field.
"""

from typing import Any

import import_declare_test  # noqa: F401

from splunktaucclib.rest_handler.admin_external import AdminExternalHandler
from splunktaucclib.rest_handler.error import RestError

from defender_lineage_core.errors import ConfigError
from defender_lineage_core.settings import check_account_fields


class AccountHandler(AdminExternalHandler):
    def _check(self, creating: bool) -> None:
        try:
            check_account_fields(self.payload or {}, creating=creating)
        except ConfigError as exc:
            raise RestError(400, str(exc)) from None

    def handleCreate(self, confInfo: Any) -> Any:
        self._check(creating=True)
        return super().handleCreate(confInfo)

    def handleEdit(self, confInfo: Any) -> Any:
        if (self.payload or {}).get("disabled") is None:
            self._check(creating=False)
        return super().handleEdit(confInfo)
