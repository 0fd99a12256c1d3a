"""Certificate authentication through the BUILT defender_alerts input, on Python 3.9 and 3.13.

The simulator's token endpoint checks each client assertion as Entra ID does: the x5t#S256
thumbprint must name a certificate registered on the app, and the PS256 signature must verify
(with `cryptography`) against that certificate's public key. The add-on signs in pure Python.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict

import pytest

from tests.harness.certificates import RegisteredCertificates, TestCertificate
from tests.harness.graph_sim import GraphSimulator
from tests.harness.pipeline import ACCOUNT_ENCRYPTED, run_input
from tests.harness.splunkd_standin import SplunkdStandin
from tests.integration.conftest import scan_for_secrets
from tests.integration.test_inputs import FAR_BACK, latest_visible, log_lines, written


@pytest.fixture(scope="module")
def registered() -> TestCertificate:
    return TestCertificate.generate(3072, cn="splunk-defender-lineage")


@pytest.fixture(scope="module")
def stranger() -> TestCertificate:
    return TestCertificate.generate(2048, cn="not-uploaded")


def seed_certificate_account(splunkd: SplunkdStandin, sim: GraphSimulator, cert: TestCertificate, pkcs8: bool) -> None:
    fields: Dict[str, str] = {
        "tenant_id": sim.tenant_id,
        "client_id": sim.client_id,
        "auth_type": "certificate",
        "certificate": cert.cert_pem,
        "private_key": cert.key_pem(pkcs8=pkcs8),
        "cloud": "custom",
        "login_url": sim.base_url,
        "graph_url": sim.base_url,
    }
    splunkd.add_ucc_account("certacct", fields, encrypted=ACCOUNT_ENCRYPTED)


def key_lines(cert: TestCertificate) -> list:
    """The base64 lines of the private key: none may appear in any log or output."""
    return [line for line in cert.key_pem().splitlines() + cert.key_pem(False).splitlines() if "-----" not in line]


def test_certificate_account_collects_every_visible_version(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path, registered: TestCertificate
):
    verifier = RegisteredCertificates(registered)
    sim.assertion_verifier = verifier
    seed_certificate_account(splunkd, sim, registered, pkcs8=True)
    params = {"account": "certacct", "start_date": FAR_BACK, "index": "defender"}
    result = run_input(splunkd, tmp_path, "defender_alerts", "cert", params, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Counter(latest_visible(sim.tenant.alert_versions(), sim.tenant.anchor_ticks).items())
    assert written(result.events) == expected
    tokens = [r for r in sim.requests if r.resource == "token"]
    assert len(tokens) == 1 and tokens[0].status == 200
    assert tokens[0].form is not None and "client_secret" not in tokens[0].form
    assert tokens[0].form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    (seen,) = verifier.seen
    assert seen["header"] == {"alg": "PS256", "typ": "JWT", "x5t#S256": registered.x5t_s256}
    claims = seen["claims"]
    assert claims["aud"] == sim.token_endpoint
    assert claims["iss"] == claims["sub"] == sim.client_id
    assert claims["exp"] - claims["nbf"] == 600 and claims["iat"] == claims["nbf"]
    summary = [line for line in log_lines(tmp_path) if "run_summary" in line]
    assert summary and "status=ok" in summary[-1]
    assert not scan_for_secrets(
        [tmp_path / "splunk_home"], [result.stderr, result.stdout.decode()], key_lines(registered)
    )


def test_wrong_certificate_fails_once_with_the_entra_code_and_advice(
    addon,
    python,
    sim: GraphSimulator,
    splunkd: SplunkdStandin,
    tmp_path: Path,
    registered: TestCertificate,
    stranger: TestCertificate,
):
    sim.assertion_verifier = RegisteredCertificates(registered)
    seed_certificate_account(splunkd, sim, stranger, pkcs8=False)
    result = run_input(splunkd, tmp_path, "defender_alerts", "wrongcert", {"account": "certacct"}, python, addon=addon)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.events == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1, failures
    assert "AADSTS700027" in failures[0] and "upload this certificate to the app registration" in failures[0]
    assert not [r for r in sim.requests if r.resource in ("alerts_v2", "incidents")]
    assert splunkd.kv_records("ta_defender_lineage_checkpoints") == []
    assert not scan_for_secrets(
        [tmp_path / "splunk_home"], [result.stderr, result.stdout.decode()], key_lines(stranger)
    )


def test_unusable_private_key_fails_the_run_naming_the_field(
    addon, python, sim: GraphSimulator, splunkd: SplunkdStandin, tmp_path: Path, registered: TestCertificate
):
    splunkd.add_ucc_account(
        "certacct",
        {
            "tenant_id": sim.tenant_id,
            "client_id": sim.client_id,
            "auth_type": "certificate",
            "certificate": registered.cert_pem,
            "private_key": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n"
            "-----END ENCRYPTED PRIVATE KEY-----\n",
            "cloud": "custom",
            "login_url": sim.base_url,
            "graph_url": sim.base_url,
        },
        encrypted=ACCOUNT_ENCRYPTED,
    )
    result = run_input(splunkd, tmp_path, "defender_alerts", "enc", {"account": "certacct"}, python, addon=addon)
    assert result.events == []
    failures = [line for line in log_lines(tmp_path) if "run_failed" in line]
    assert len(failures) == 1 and "private_key is encrypted with a passphrase" in failures[0]
    assert "MIIFHDBOBgkqhkiG9w0BBQ0w" not in "\n".join(log_lines(tmp_path))
    assert sim.requests == []
