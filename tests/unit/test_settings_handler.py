"""The Proxy/Logging settings handler: UCC's generated model kept exactly, plus the proxy-password rule.

UCC 6.6 has no handler class hook for the settings endpoint, so the add-on ships the handler file
under the generated name (UCC then keeps it). The first test regenerates UCC's own handler from
``globalConfig.json`` with UCC's builder and compares the model, so the shipped copy cannot drift
from the configuration pages. The others hold the rule that a stored proxy password goes only to
the proxy it was saved for.
"""

from __future__ import annotations

import ast
from typing import Any, Dict

import pytest

from defender_lineage_core.credential_binding import PROXY_REENTER_MESSAGE, refuse_redirected_proxy_password
from defender_lineage_core.errors import ConfigError
from tests.harness.pipeline import ROOT

HANDLER = ROOT / "package" / "bin" / "ta_defender_lineage_rh_settings.py"
BEGIN = "# ---- UCC's generated model"
END = "# ---- end of UCC's generated model ----"


def _model_statements(source: str) -> list:
    """The module-level statements of a handler that build the REST model (fields, models, endpoint)."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            target = node.targets[0].id  # type: ignore[attr-defined]
            if target.startswith(("fields_", "model_")) or target == "endpoint":
                names.append(ast.dump(node, include_attributes=False))
    return names


def _generated_settings_handler() -> str:
    from splunk_add_on_ucc_framework import global_config as gcl
    from splunk_add_on_ucc_framework.commands.rest_builder.global_config_builder_schema import (
        GlobalConfigBuilderSchema,
    )

    config = gcl.GlobalConfig.from_file(str(ROOT / "globalConfig.json"))
    config.cleanup_unwanted_params()
    config.expand()
    (endpoint,) = [e for e in GlobalConfigBuilderSchema(config).endpoints if e.rh_name.endswith("_rh_settings")]
    return str(endpoint.generate_rh())


def test_shipped_settings_model_is_exactly_what_ucc_generates() -> None:
    shipped = HANDLER.read_text(encoding="utf-8")
    assert BEGIN in shipped and END in shipped
    block = shipped.split(BEGIN, 1)[1].split("\n", 1)[1].split(END, 1)[0]
    generated = _model_statements(_generated_settings_handler())
    assert generated, "UCC generated no settings model"
    assert _model_statements(block) == generated
    assert _model_statements(shipped) == generated  # and nothing outside the block redefines it


STORED: Dict[str, Any] = {
    "proxy_enabled": "1",
    "proxy_type": "http",
    "proxy_url": "proxy.corp.example.com",
    "proxy_port": "3128",
    "proxy_username": "svc",
    "proxy_password": "stored-proxy-secret",
}


@pytest.mark.parametrize(
    "change",
    [
        {"proxy_url": "proxy.attacker.example"},
        {"proxy_port": "8080"},
        {"proxy_type": "socks5"},
        {"proxy_url": "10.1.2.3", "proxy_port": "3128"},
    ],
)
@pytest.mark.parametrize("password", ["******", "********", None])
def test_moving_the_proxy_with_the_stored_password_is_refused(change: Dict[str, str], password: Any) -> None:
    payload = {**STORED, **change}
    if password is None:
        del payload["proxy_password"]  # a REST client that leaves the field out keeps it too
    else:
        payload["proxy_password"] = password
    with pytest.raises(ConfigError) as raised:
        refuse_redirected_proxy_password(payload, STORED)
    assert str(raised.value) == PROXY_REENTER_MESSAGE
    assert "stored-proxy-secret" not in str(raised.value)


@pytest.mark.parametrize(
    "payload",
    [
        {**STORED, "proxy_url": "proxy2.corp.example.com", "proxy_password": "typed-again"},  # re-entered
        {**STORED, "proxy_url": "proxy2.corp.example.com", "proxy_password": ""},  # cleared: nothing is sent
        {**STORED, "proxy_password": "******"},  # the same proxy
        {**STORED, "proxy_url": "PROXY.corp.example.com", "proxy_password": "******"},  # host names ignore case
        {**STORED, "proxy_port": "03128", "proxy_password": "******"},  # the same port
        {**STORED, "proxy_username": "other", "proxy_password": "******"},  # same proxy, other user
        {"proxy_enabled": "0"},  # a partial edit that moves nothing
    ],
)
def test_edits_that_do_not_redirect_the_password_pass(payload: Dict[str, Any]) -> None:
    refuse_redirected_proxy_password(payload, STORED)


def test_nothing_stored_nothing_to_redirect() -> None:
    refuse_redirected_proxy_password({"proxy_url": "anywhere.example", "proxy_password": "******"}, {})
    refuse_redirected_proxy_password(
        {"proxy_url": "anywhere.example", "proxy_password": "******"}, {**STORED, "proxy_password": ""}
    )
    # stored with the default type (none written) and saved as http: not a move
    stored = {k: v for k, v in STORED.items() if k != "proxy_type"}
    refuse_redirected_proxy_password({**stored, "proxy_type": "http", "proxy_password": "******"}, stored)
