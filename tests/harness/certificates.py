"""Test certificates, and an Entra-like client-assertion check that really verifies signatures.

Uses the `cryptography` package (a development requirement only; the add-on signs in pure Python).
Plug ``RegisteredCertificates(...)`` into ``GraphSimulator.assertion_verifier`` to make the
simulator's token endpoint accept only assertions signed by a certificate registered on the app.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.harness.graph_sim import default_assertion_verifier


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class TestCertificate:
    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    __test__ = False  # not a pytest class

    @classmethod
    def generate(cls, bits: int = 2048, cn: str = "splunk-defender-lineage", days: int = 365) -> TestCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = datetime.now(timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=min(-1, days - 30)))
            .not_valid_after(now + timedelta(days=days))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def cert_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self, pkcs8: bool = True) -> str:
        fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()

    @property
    def x5t_s256(self) -> str:
        return b64url(hashlib.sha256(self.der).digest())

    @property
    def x5t(self) -> str:
        return b64url(hashlib.sha1(self.der).digest())  # noqa: S324 - x5t is SHA-1 by definition

    @property
    def thumbprint(self) -> str:
        return hashlib.sha1(self.der).hexdigest().upper()  # noqa: S324


class RegisteredCertificates:
    """Entra's check of a client assertion: known thumbprint, valid signature, audience, times."""

    def __init__(self, *certificates: TestCertificate) -> None:
        self.certificates: List[TestCertificate] = list(certificates)
        self.seen: List[Dict[str, Any]] = []  # headers and claims of every assertion checked

    def __call__(self, assertion: str, header: Dict[str, Any], claims: Dict[str, Any], sim: Any) -> Optional[str]:
        self.seen.append({"header": header, "claims": claims})
        alg = header.get("alg")
        if alg not in ("PS256", "RS256"):
            return f"AADSTS5002730: Invalid JWT token. Unsupported signing algorithm {json.dumps(alg)}."
        match = None
        for registered in self.certificates:
            if header.get("x5t#S256") == registered.x5t_s256 or header.get("x5t") == registered.x5t:
                match = registered
        if match is None:
            used = header.get("x5t#S256") or header.get("x5t") or "none"
            return (
                "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered "
                f"on application. [Reason - The key was not found., Thumbprint of key used by client: '{used}']"
            )
        head, body, signature = assertion.split(".")
        chosen = (
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if alg == "PS256" else padding.PKCS1v15()
        )
        try:
            match.key.public_key().verify(unb64url(signature), f"{head}.{body}".encode(), chosen, hashes.SHA256())
        except (InvalidSignature, ValueError):
            return "AADSTS700027: Client assertion failed signature validation."
        audiences = {f"{sim.base_url}/{t}/oauth2/v2.0/token" for t in (sim.tenant_id, *sim.tenant_aliases)}
        if claims.get("aud") not in audiences:
            return "AADSTS700027: Client assertion audience claim does not match Realm issuer."
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(nbf, int) or not isinstance(exp, int) or not claims.get("jti"):
            return "AADSTS50027: JWT token is invalid or malformed."
        return default_assertion_verifier(assertion, header, claims, sim)
