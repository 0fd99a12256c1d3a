"""Settings REST handler (Proxy and Logging tabs): UCC's generated handler, plus one rule.

UCC 6.6 gives the settings endpoint no ``restHandlerClass`` of its own, and documents that it keeps
a handler file the add-on ships under the generated name instead of generating it. So this file is
UCC's generated model, unchanged (``tests/unit/test_settings_handler.py`` regenerates it from
``globalConfig.json`` with UCC's own builder and fails on any difference), and a handler that
adds what the model cannot express: a stored proxy password goes only to the proxy it was saved for
(``defender_lineage_core.credential_binding.refuse_redirected_proxy_password``). Pointing the proxy
at another host, port or type keeps UCC's ``******`` placeholder for the password, and without this
rule the stored password would be sent to the new host on the next run.
"""

import logging
from typing import Any

import import_declare_test  # noqa: F401  # must come first: puts the app's lib/ on sys.path

from splunktaucclib.rest_handler import admin_external, util
from splunktaucclib.rest_handler.admin_external import AdminExternalHandler
from splunktaucclib.rest_handler.endpoint import (
    MultipleModel,
    RestModel,
    field,
    validator,
)
from splunktaucclib.rest_handler.error import RestError
from ta_defender_lineage_account_handler import read_stanza

from defender_lineage_core.credential_binding import refuse_redirected_proxy_password
from defender_lineage_core.errors import ConfigError

util.remove_http_proxy_env_vars()

# ---- UCC's generated model (regenerated and compared by tests/unit/test_settings_handler.py) ----

fields_proxy = [
    field.RestField("proxy_enabled", required=False, encrypted=False, default=None, validator=None),
    field.RestField(
        "proxy_type",
        required=False,
        encrypted=False,
        default="http",
        validator=validator.Pattern(
            regex=r"""^(http|socks5)$""",
        ),
    ),
    field.RestField(
        "proxy_url",
        required=True,
        encrypted=False,
        default=None,
        validator=validator.AllOf(
            validator.String(
                max_len=4096,
                min_len=1,
            ),
            validator.Pattern(
                regex=r"""^(?!169\.254\.|\[[Ff][Ee][89AaBb]|\[[Ff][Dd]00:[Ee][Cc]2::254\]|100\.100\.100\.200|metadata\.google\.internal)(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*)$""",
            ),
        ),
    ),
    field.RestField(
        "proxy_port",
        required=True,
        encrypted=False,
        default=None,
        validator=validator.Number(
            max_val=65535,
            min_val=1,
            is_int=True,
        ),
    ),
    field.RestField(
        "proxy_username",
        required=False,
        encrypted=False,
        default=None,
        validator=validator.String(
            max_len=50,
            min_len=0,
        ),
    ),
    field.RestField(
        "proxy_password",
        required=False,
        encrypted=True,
        default=None,
        validator=validator.String(
            max_len=8192,
            min_len=0,
        ),
    ),
]
model_proxy = RestModel(fields_proxy, name="proxy")


fields_logging = [
    field.RestField(
        "loglevel",
        required=True,
        encrypted=False,
        default="INFO",
        validator=validator.Pattern(
            regex=r"""^DEBUG|INFO|WARNING|ERROR|CRITICAL$""",
        ),
    )
]
model_logging = RestModel(fields_logging, name="logging")


endpoint = MultipleModel(
    "ta_defender_lineage_settings",
    models=[model_proxy, model_logging],
    need_reload=False,
)


# ---- end of UCC's generated model ----

SETTINGS_CONF = "ta_defender_lineage_settings"


class SettingsHandler(AdminExternalHandler):
    def handleEdit(self, confInfo: Any) -> Any:
        if self.callerArgs.id == "proxy":
            stored = read_stanza(self.getSessionKey(), SETTINGS_CONF, "proxy")
            try:
                refuse_redirected_proxy_password(self.payload or {}, stored)
            except ConfigError as exc:
                raise RestError(400, str(exc)) from None
        return super().handleEdit(confInfo)


if __name__ == "__main__":
    logging.getLogger().addHandler(logging.NullHandler())
    admin_external.handle(
        endpoint,
        handler=SettingsHandler,
    )
