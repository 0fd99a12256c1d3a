"""The account check on save, against the Graph simulator: every failure names what to fix, never the secret."""

from __future__ import annotations

import logging
import socket
from typing import Dict, Iterator, Optional

import pytest

from defender_lineage_core.account_check import (
    AccountCheckError,
    CheckResult,
    check_account,
    check_saved_account,
    merge_saved_account,
)
from defender_lineage_core.errors import ConfigError
from defender_lineage_core.settings import Account, account_from_conf
from tests.harness.certificates import RegisteredCertificates, TestCertificate
from tests.harness.graph_sim import GraphSimulator, SyntheticTenant
from tests.harness.proxy_server import closed_port, serve_refusing_proxy

OTHER_GUID = "11111111-2222-4333-8444-555555555555"
PROXY_PASSWORD = "pr0xy-pa55word-never-shown"


@pytest.fixture
def sim(fresh_sim: GraphSimulator) -> GraphSimulator:
    return fresh_sim  # one simulator per test, as before: tests here change what a reset does not undo


@pytest.fixture(scope="module")
def registered() -> TestCertificate:
    return TestCertificate.generate(2048)


@pytest.fixture(scope="module")
def stranger() -> TestCertificate:
    return TestCertificate.generate(2048, cn="not-uploaded")


def fields(sim: GraphSimulator, **change: str) -> Dict[str, str]:
    values = {
        "tenant_id": sim.tenant_id,
        "client_id": sim.client_id,
        "auth_type": "client_secret",
        "client_secret": sim.client_secret,
        "cloud": "custom",
        "login_url": sim.base_url,
        "graph_url": sim.base_url,
    }
    values.update(change)
    return values


def account(sim: GraphSimulator, **change: str) -> Account:
    return account_from_conf("acme", fields(sim, **change))


def cert_fields(cert: TestCertificate, pkcs8: bool = True) -> Dict[str, str]:
    return {
        "auth_type": "certificate",
        "client_secret": "",
        "certificate": cert.cert_pem,
        "private_key": cert.key_pem(pkcs8),
    }


def refused(acct: Account, **options) -> AccountCheckError:
    with pytest.raises(AccountCheckError) as caught:
        check_account(acct, timeout=options.pop("timeout", 5.0), **options)
    error = caught.value
    message = str(error)
    for secret in (acct.client_secret, acct.private_key, PROXY_PASSWORD):
        if secret:
            assert secret not in message
            for line in secret.splitlines():
                assert len(line) < 16 or line.startswith("-----") or line not in message
    return error


# -- success ---------------------------------------------------------------------------------


def test_secret_account_passes_with_one_token_and_one_small_page_per_resource(sim):
    result = check_account(account(sim))
    assert isinstance(result, CheckResult) and result.ok
    assert result.resources == {"alerts_v2": 1, "incidents": 1}
    assert [r.resource for r in sim.requests] == ["token", "alerts_v2", "incidents"]
    assert all(r.query.get("$top") == "1" for r in sim.requests[1:])


@pytest.mark.parametrize("pkcs8", [True, False], ids=["pkcs8", "pkcs1"])
def test_certificate_account_passes_with_a_verified_ps256_assertion(sim, registered, pkcs8):
    verifier = RegisteredCertificates(registered)
    sim.assertion_verifier = verifier
    result = check_account(account(sim, **cert_fields(registered, pkcs8)))
    assert result.ok and set(result.resources) == {"alerts_v2", "incidents"}
    token = sim.requests[0]
    assert token.form is not None and "client_secret" not in token.form
    assert token.form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    (seen,) = verifier.seen
    assert seen["header"] == {"alg": "PS256", "typ": "JWT", "x5t#S256": registered.x5t_s256}
    assert seen["claims"]["aud"] == f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token"


# -- Entra ID --------------------------------------------------------------------------------


def test_unknown_tenant(sim):
    error = refused(account(sim, tenant_id=OTHER_GUID))
    assert error.kind == "unknown_tenant" and error.code == "AADSTS90002"
    assert OTHER_GUID in str(error) and "Directory (tenant) ID" in str(error) and "Cloud" in str(error)


def test_wrong_client_id(sim):
    error = refused(account(sim, client_id=OTHER_GUID))
    assert error.kind == "wrong_client_id" and error.code == "AADSTS700016"
    assert OTHER_GUID in str(error) and "Application (client) ID" in str(error)


def test_wrong_secret_is_never_echoed(sim, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng~secret.value-that-must-not-leak"
    error = refused(account(sim, client_secret=wrong))
    assert error.kind == "wrong_secret" and error.code == "AADSTS7000215"
    assert "Value, not its Secret ID" in str(error)
    assert wrong not in caplog.text and sim.client_secret not in caplog.text


def test_expired_secret(sim):
    sim.faults.add(
        401,
        resource="token",
        body={
            "error": "invalid_client",
            "error_description": "AADSTS7000222: The provided client secret keys for app '...' are expired. "
            "Visit the Azure portal to create new keys for your app. Trace ID: x",
            "error_codes": [7000222],
        },
    )
    error = refused(account(sim))
    assert error.kind == "expired_secret" and error.code == "AADSTS7000222"
    assert "create a new client secret" in str(error)


def test_certificate_not_uploaded_names_its_thumbprint(sim, registered, stranger):
    sim.assertion_verifier = RegisteredCertificates(registered)
    error = refused(account(sim, **cert_fields(stranger)))
    assert error.kind == "certificate_not_registered" and error.code == "AADSTS700027"
    assert stranger.thumbprint in str(error) and "CN=not-uploaded" in str(error)
    assert "upload the certificate" in str(error)


def test_assertion_outside_its_time_window(sim, registered):
    sim.assertion_verifier = lambda *args: "AADSTS700024: Client assertion is not within its valid time range."
    error = refused(account(sim, **cert_fields(registered)))
    assert error.kind == "assertion_invalid" and "clock" in str(error)


def test_key_that_does_not_match_its_certificate_is_refused_before_any_request(sim, registered, stranger):
    error = refused(
        account(sim, certificate=registered.cert_pem, private_key=stranger.key_pem(), auth_type="certificate")
    )
    assert error.kind == "certificate_invalid" and "does not belong to the certificate" in str(error)
    assert sim.requests == []


def test_expired_certificate_is_refused_before_any_request(sim):
    old = TestCertificate.generate(2048, days=-2)
    error = refused(account(sim, **cert_fields(old)))
    assert error.kind == "certificate_expired" and "expired on" in str(error) and old.thumbprint in str(error)
    assert sim.requests == []


def test_garbage_key_is_refused_without_echo(sim, registered):
    garbage = (
        "-----BEGIN PRIVATE KEY-----\nTUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lCQVFD\n"
        "-----END PRIVATE KEY-----"
    )
    error = refused(account(sim, auth_type="certificate", certificate=registered.cert_pem, private_key=garbage))
    assert error.kind == "certificate_invalid" and str(error).startswith("private_key")
    assert "TUlJRXZRSUJBREFOQmdrcWhraUc5" not in str(error)


@pytest.mark.parametrize(
    ("number", "kind", "advice"),
    [
        ("7000112", "app_disabled", "enable it"),
        ("7000229", "missing_consent", "admin consent"),
        ("53003", "blocked_by_policy", "Conditional Access"),
        ("500011", "wrong_cloud", "check Cloud"),
    ],
)
def test_other_entra_refusals(sim, number, kind, advice):
    sim.faults.add(
        400,
        resource="token",
        body={"error": "invalid_request", "error_description": f"AADSTS{number}: something. Trace ID: x"},
    )
    error = refused(account(sim))
    assert error.kind == kind and error.code == f"AADSTS{number}" and advice in str(error)


def test_token_endpoint_that_is_not_entra(sim):
    sim.faults.add(404, resource="token", body=b"<html>Not Found</html>")
    error = refused(account(sim))
    assert error.kind == "not_entra" and "Login URL" in str(error)


def test_entra_unavailable_is_temporary(sim):
    sim.faults.add(503, resource="token", times=None, retry_after="0")
    error = refused(account(sim))
    assert error.kind == "entra_unavailable" and "again in a few minutes" in str(error)


# -- Graph -----------------------------------------------------------------------------------


def test_missing_alert_permission_names_it(sim):
    sim.set_roles("SecurityIncident.Read.All")
    error = refused(account(sim))
    assert error.kind == "missing_permission"
    assert "SecurityAlert.Read.All (alerts_v2)" in str(error) and "SecurityIncident.Read.All" not in str(error)
    assert "Grant admin consent" in str(error)


def test_missing_both_permissions_names_both(sim):
    sim.set_roles()
    error = refused(account(sim))
    assert "SecurityAlert.Read.All (alerts_v2) and SecurityIncident.Read.All (incidents)" in str(error)
    assert "permissions" in str(error)


def test_graph_refusing_the_token_points_at_the_cloud(sim):
    sim.faults.add(401, resource="graph", times=None)
    error = refused(account(sim))
    assert error.kind == "token_refused" and "check Cloud" in str(error)


def test_graph_answering_html(sim):
    sim.faults.add(kind="malformed_json", resource="alerts_v2")
    error = refused(account(sim))
    assert error.kind == "not_graph" and "proxy" in str(error)


def test_graph_busy_is_a_warning_not_a_refusal(sim):
    sim.faults.add(503, resource="incidents", times=None, retry_after="0")
    result = check_account(account(sim), timeout=5.0)
    assert not result.ok and "HTTP 503" in result.warnings[0]
    assert result.resources == {"alerts_v2": 1}


# -- network and proxy -----------------------------------------------------------------------


@pytest.fixture
def proxy407() -> Iterator[int]:
    yield from serve_refusing_proxy()


def proxies(port: int) -> Dict[str, str]:
    url = f"http://squid-user:{PROXY_PASSWORD}@127.0.0.1:{port}"
    return {"http": url, "https": url}


def test_proxy_refusing_credentials_plain_http(sim, proxy407):
    error = refused(account(sim), proxies=proxies(proxy407))
    assert error.kind == "proxy_auth" and f"127.0.0.1:{proxy407}" in str(error) and "Proxy tab" in str(error)


def test_proxy_refusing_credentials_on_connect(proxy407):
    https = {"login_url": "https://127.0.0.1:9", "graph_url": "https://127.0.0.1:9"}
    acct = account_from_conf("acme", {**fields_without_sim(), **https})
    error = refused(acct, proxies=proxies(proxy407))
    assert error.kind == "proxy_auth" and "HTTP 407" in str(error)


def fields_without_sim() -> Dict[str, str]:
    return {
        "tenant_id": OTHER_GUID,
        "client_id": OTHER_GUID,
        "auth_type": "client_secret",
        "client_secret": "an-unused-secret-value",
        "cloud": "custom",
    }


def test_proxy_unreachable(sim):
    port = closed_port()
    error = refused(account(sim), proxies=proxies(port))
    assert error.kind == "proxy_unreachable" and f"127.0.0.1:{port}" in str(error)


def test_name_resolution(monkeypatch):
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".unresolvable.example"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    urls = {"login_url": "https://login.unresolvable.example", "graph_url": "https://graph.unresolvable.example"}
    error = refused(account_from_conf("acme", {**fields_without_sim(), **urls}))
    assert error.kind == "name_resolution" and "login.unresolvable.example" in str(error) and "DNS" in str(error)


def test_connection_refused():
    port = closed_port()
    urls = {"login_url": f"http://127.0.0.1:{port}", "graph_url": f"http://127.0.0.1:{port}"}
    error = refused(account_from_conf("acme", {**fields_without_sim(), **urls}))
    assert error.kind == "connection_refused" and f"127.0.0.1:{port}" in str(error) and "Entra ID" in str(error)


def test_no_answer_in_time(sim):
    sim.faults.add(kind="delay", resource="token", delay=1.5, times=None)
    error = refused(account(sim), timeout=0.5)
    assert error.kind == "network_timeout" and "did not answer" in str(error)


# -- clouds and saving -----------------------------------------------------------------------


def test_china_is_refused_with_the_reason(sim):
    with pytest.raises(ConfigError, match="not offered") as caught:
        check_saved_account("acme", fields(sim, cloud="china"), {})
    assert "21Vianet" in str(caught.value)
    assert sim.requests == []


def test_edit_with_placeholders_uses_the_stored_secret(sim):
    stored = {**fields(sim), "eai:acl": None, "disabled": "0"}
    edit = {"client_secret": "******", "certificate": "", "private_key": "", "cloud": "custom"}
    assert merge_saved_account(edit, stored)["client_secret"] == sim.client_secret
    assert merge_saved_account({"client_secret": "********"}, stored)["client_secret"] == sim.client_secret
    assert merge_saved_account({"client_secret": "new"}, stored)["client_secret"] == "new"
    assert merge_saved_account({"client_secret": ""}, stored)["client_secret"] == ""  # UCC clears it
    assert merge_saved_account({}, stored)["client_secret"] == sim.client_secret
    assert check_saved_account("acme", edit, stored).ok
    # An edit that changes the tenant is checked with the stored secret and the new tenant.
    error: Optional[AccountCheckError] = None
    try:
        check_saved_account("acme", {"tenant_id": OTHER_GUID, "client_secret": "******"}, stored)
    except AccountCheckError as exc:
        error = exc
    assert error is not None and error.kind == "unknown_tenant"


def test_edit_switching_to_certificate_needs_both_fields(sim, registered):
    stored = fields(sim)
    with pytest.raises(ConfigError, match="certificate is required"):
        check_saved_account("acme", {"auth_type": "certificate", "client_secret": "******"}, stored)
    sim.assertion_verifier = RegisteredCertificates(registered)
    assert check_saved_account("acme", cert_fields(registered), stored).ok


# -- a stored credential goes only where it was saved for (issue 12, item 5) -----------------


@pytest.fixture
def elsewhere() -> Iterator[GraphSimulator]:
    """A second server that would happily take the stored secret (same tenant and client id)."""
    tenant = SyntheticTenant.generate(seed=3)
    with GraphSimulator(tenant, max_lifetime=300.0) as server:
        yield server


@pytest.mark.parametrize(
    "move",
    [
        lambda other: {"login_url": other.base_url},
        lambda other: {"graph_url": other.base_url},
        lambda other: {"cloud": "custom", "login_url": other.base_url, "graph_url": other.base_url},
        lambda other: {"cloud": "global"},
    ],
)
def test_an_edit_cannot_send_the_stored_secret_to_new_endpoints(sim, elsewhere, move):
    stored = fields(sim)
    for kept in ({"client_secret": "******"}, {}):  # the placeholder, or the field left out
        with pytest.raises(ConfigError, match="enter the credential again") as caught:
            check_saved_account("acme", {**kept, **move(elsewhere)}, stored, timeout=5.0)
        assert sim.client_secret not in str(caught.value)
    assert elsewhere.requests == [] and sim.requests == []  # refused before anything was sent


def test_an_edit_that_reenters_the_secret_may_move_the_endpoints(sim, elsewhere):
    stored = fields(sim, client_secret="the-old-secret-value")
    urls = {"login_url": elsewhere.base_url, "graph_url": elsewhere.base_url}
    assert check_saved_account("acme", {**urls, "client_secret": elsewhere.client_secret}, stored).ok
    assert elsewhere.requests and sim.requests == []
    # Unchanged endpoints (UCC sends every field on edit) keep working with the stored secret.
    assert check_saved_account("acme", {**fields(sim), "client_secret": "******"}, fields(sim)).ok


def test_a_certificate_account_moves_only_with_certificate_and_key(sim, elsewhere, registered):
    stored = {**fields(sim), **cert_fields(registered)}
    moved = {"login_url": elsewhere.base_url, "graph_url": elsewhere.base_url}
    for kept in (
        {"certificate": "******", "private_key": "******"},
        {"certificate": registered.cert_pem, "private_key": "******"},
        {"certificate": "******", "private_key": registered.key_pem(True)},
    ):
        with pytest.raises(ConfigError, match="certificate and its private key"):
            check_saved_account("acme", {**moved, **kept}, stored, timeout=5.0)
    assert elsewhere.requests == []
    elsewhere.assertion_verifier = RegisteredCertificates(registered)
    assert check_saved_account("acme", {**moved, **cert_fields(registered)}, stored).ok
