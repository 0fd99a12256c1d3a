"""Input REST handler: deleting an input deletes its cursor (and its per-tenant cursors).

Without this, an input re-created under the same name would silently resume the old cursor
instead of starting from its start_date.
"""

import json
import logging
from typing import Any
from urllib.parse import urlsplit

import import_declare_test  # noqa: F401

from solnlib.modular_input import checkpointer
from splunklib import client
from splunktaucclib.rest_handler.admin_external import AdminExternalHandler, get_splunkd_endpoint

from defender_lineage_splunk.app import APP, CHECKPOINT_COLLECTION
from defender_lineage_splunk.inputs import checkpoint_key, tenant_cursor_pattern

_log = logging.getLogger(__name__)


class InputHandler(AdminExternalHandler):
    def handleRemove(self, confInfo: Any) -> Any:
        result = super().handleRemove(confInfo)
        input_type = self.handler.get_endpoint().input_type
        uri = urlsplit(get_splunkd_endpoint())
        try:
            store = checkpointer.KVStoreCheckpointer(
                CHECKPOINT_COLLECTION,
                self.getSessionKey(),
                APP,
                scheme=uri.scheme,
                host=uri.hostname,
                port=uri.port,
            )
            store.delete(checkpoint_key(input_type, self.callerArgs.id))
            # An input with a ``tenants`` field has one cursor per tenant: <kind>__<name>__<tenant id>.
            service = client.Service(
                scheme=uri.scheme, host=uri.hostname, port=uri.port, token=self.getSessionKey(), owner="nobody", app=APP
            )
            query = json.dumps({"_key": {"$regex": tenant_cursor_pattern(input_type, self.callerArgs.id)}})
            service.kvstore[CHECKPOINT_COLLECTION].data.delete(query=query)
        except Exception as exc:  # the input is gone either way; say why its cursor stayed
            _log.warning("could not delete the cursor of %s://%s: %s", input_type, self.callerArgs.id, exc)
        return result
