"""The pure-Python certificate credential, checked against the `cryptography` package (tests only)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from functools import cache
from typing import Dict, Tuple

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from defender_lineage_core.certificate import (
    ASSERTION_LIFETIME,
    JWT_BEARER,
    CertificateError,
    ClientCertificate,
    load_certificate,
    load_private_key,
    sign_pkcs1v15_sha256,
    sign_pss_sha256,
)
from defender_lineage_core.errors import ConfigError

TOKEN_URL = "https://login.microsoftonline.com/4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31/oauth2/v2.0/token"
CLIENT_ID = "0f6c9d2a-1b3e-4c5d-8e7f-9a0b1c2d3e4f"
PKCS1 = serialization.PrivateFormat.TraditionalOpenSSL
PKCS8 = serialization.PrivateFormat.PKCS8
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


@cache
def keypair(bits: int, label: str = "a") -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_cert(key, cn: str = "splunk-defender", days: Tuple[int, int] = (-1, 365)) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .sign(key, hashes.SHA256())
    )


def pem_key(key, fmt=PKCS8, password: bytes = b"") -> str:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, enc).decode()


def pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def decode(jwt: str) -> Tuple[Dict, Dict, bytes, bytes]:
    header, claims, signature = jwt.split(".")
    return json.loads(unb64(header)), json.loads(unb64(claims)), unb64(signature), f"{header}.{claims}".encode()


@pytest.mark.parametrize("bits", [2048, 3072])
@pytest.mark.parametrize("fmt", [PKCS1, PKCS8], ids=["pkcs1", "pkcs8"])
def test_ps256_assertion_verifies_with_cryptography(bits, fmt):
    key = keypair(bits)
    cert = make_cert(key)
    credential = ClientCertificate(pem_cert(cert), pem_key(key, fmt), clock=lambda: 1_800_000_000.5)
    form = credential.form(TOKEN_URL, CLIENT_ID)
    assert set(form) == {"client_assertion_type", "client_assertion"}
    assert form["client_assertion_type"] == JWT_BEARER == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header, claims, signature, signing_input = decode(form["client_assertion"])
    der = cert.public_bytes(serialization.Encoding.DER)
    assert header == {
        "alg": "PS256",
        "typ": "JWT",
        "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode(),
    }
    assert claims["aud"] == TOKEN_URL
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["nbf"] == claims["iat"] == 1_800_000_000
    assert claims["exp"] == 1_800_000_000 + ASSERTION_LIFETIME == claims["nbf"] + 600
    assert uuid.UUID(claims["jti"]).version == 4
    assert len(signature) == bits // 8
    key.public_key().verify(signature, signing_input, PSS, hashes.SHA256())
    # A fresh jti and a fresh salt every time.
    again = credential.form(TOKEN_URL, CLIENT_ID)["client_assertion"]
    assert decode(again)[1]["jti"] != claims["jti"] and decode(again)[2] != signature


def test_thumbprints_over_the_der():
    key = keypair(2048)
    cert = make_cert(key, cn="Contoso Splunk")
    parsed = load_certificate(pem_cert(cert))
    der = cert.public_bytes(serialization.Encoding.DER)
    assert parsed.der == der
    assert parsed.sha256 == cert.fingerprint(hashes.SHA256())
    assert parsed.sha1 == cert.fingerprint(hashes.SHA1())  # noqa: S303
    assert parsed.thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303
    assert parsed.subject == "Contoso Splunk"
    assert parsed.not_after == cert.not_valid_after_utc
    assert parsed.public_key.n == key.public_key().public_numbers().n
    # DER bytes and bare base64 are read too.
    assert load_certificate(der).sha256 == parsed.sha256
    assert load_certificate(base64.b64encode(der).decode()).sha256 == parsed.sha256


@pytest.mark.parametrize("bits", [2048, 3072])
def test_pkcs1v15_signature_equals_cryptography(bits):
    key = keypair(bits)
    ours = load_private_key(pem_key(key, PKCS1))
    for message in (b"", b"header.claims", bytes(range(256)) * 5):
        expected = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        assert sign_pkcs1v15_sha256(ours, message) == expected


def test_pss_with_fixed_salt_is_deterministic_and_verifies():
    key = keypair(2048)
    ours = load_private_key(pem_key(key, PKCS8))
    salt = bytes(range(32))
    first = sign_pss_sha256(ours, b"message", salt=salt)
    assert first == sign_pss_sha256(ours, b"message", salt=salt)
    key.public_key().verify(first, b"message", PSS, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        key.public_key().verify(first, b"other message", PSS, hashes.SHA256())


def test_odd_modulus_length_signs_correctly():
    # A 2049-bit key: emBits is not a multiple of 8, the top bits of the PSS encoding must be cleared.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2049)
    ours = load_private_key(pem_key(key, PKCS1))
    for _ in range(5):
        key.public_key().verify(sign_pss_sha256(ours, b"m"), b"m", PSS, hashes.SHA256())


def test_rs256_fallback_form():
    key = keypair(2048)
    cert = make_cert(key)
    credential = ClientCertificate(pem_cert(cert), pem_key(key), algorithm="RS256")
    header, _claims, signature, signing_input = decode(credential.assertion(TOKEN_URL, CLIENT_ID))
    assert header == {
        "alg": "RS256",
        "typ": "JWT",
        "x5t": base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA1())).rstrip(b"=").decode(),  # noqa: S303
    }
    key.public_key().verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())


def test_combined_pem_in_either_field():
    key = keypair(2048)
    both = pem_key(key, PKCS1) + pem_cert(make_cert(key))
    credential = ClientCertificate(both, both)
    _, _, signature, signing_input = decode(credential.assertion(TOKEN_URL, CLIENT_ID))
    key.public_key().verify(signature, signing_input, PSS, hashes.SHA256())
    # Newlines flattened to spaces (a textarea that lost them) still parse.
    flat_key = pem_key(key).replace("\n", " ")
    assert load_private_key(flat_key).n == key.public_key().public_numbers().n


@pytest.mark.parametrize("fmt", [PKCS1, PKCS8], ids=["pkcs1", "pkcs8"])
def test_encrypted_key_refused(fmt):
    key = keypair(2048)
    encrypted = pem_key(key, fmt, password=b"passphrase")
    with pytest.raises(CertificateError, match="encrypted with a passphrase") as caught:
        load_private_key(encrypted)
    assert isinstance(caught.value, ConfigError)
    assert "openssl pkcs12" in str(caught.value)
    # The same as DER (EncryptedPrivateKeyInfo without PEM armour).
    der = key.private_bytes(serialization.Encoding.DER, PKCS8, serialization.BestAvailableEncryption(b"passphrase"))
    with pytest.raises(CertificateError, match="encrypted with a passphrase"):
        load_private_key(der)


def test_key_that_does_not_match_the_certificate_refused():
    cert = make_cert(keypair(2048, "a"))
    other = keypair(2048, "b")
    with pytest.raises(CertificateError, match="does not belong to the certificate") as caught:
        ClientCertificate(pem_cert(cert), pem_key(other))
    assert load_certificate(pem_cert(cert)).thumbprint in str(caught.value)


def test_non_rsa_and_short_keys_refused():
    eckey = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CertificateError, match="not an RSA key"):
        load_private_key(pem_key(eckey, PKCS8))
    with pytest.raises(CertificateError, match="not an RSA key"):
        load_private_key(pem_key(eckey, PKCS1))
    with pytest.raises(CertificateError, match="RSA public key"):
        load_certificate(pem_cert(make_cert(eckey)))
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the point is that it is refused
    with pytest.raises(CertificateError, match="at least 2048 bits"):
        load_private_key(pem_key(short))


def test_expired_certificate_is_reported():
    key = keypair(2048)
    credential = ClientCertificate(pem_cert(make_cert(key, days=(-30, -1))), pem_key(key))
    problem = credential.expiry_problem()
    assert problem and "expired on" in problem and credential.certificate.thumbprint in problem
    assert ClientCertificate(pem_cert(make_cert(key)), pem_key(key)).expiry_problem() is None


def test_damaged_key_numbers_refused():
    key = keypair(2048)
    numbers = key.private_numbers()
    # Swap dmp1 for a wrong value: still valid DER, inconsistent RSA numbers.
    bad = rsa.RSAPrivateNumbers(
        numbers.p, numbers.q, numbers.d, numbers.dmp1 + 2, numbers.dmq1, numbers.iqmp, numbers.public_numbers
    )
    try:
        damaged = bad.private_key(unsafe_skip_rsa_key_validation=True)
    except ValueError:
        pytest.skip("cryptography refused to build the damaged key")
    with pytest.raises(CertificateError, match="damaged"):
        load_private_key(pem_key(damaged, PKCS1))


SECRET_LOOKING = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secretkeymaterial"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "not a key at all",
        f"-----BEGIN PRIVATE KEY-----\n{SECRET_LOOKING}\n-----END PRIVATE KEY-----\n",
        f"-----BEGIN RSA PRIVATE KEY-----\n{SECRET_LOOKING}==\n-----END RSA PRIVATE KEY-----\n",
        f"-----BEGIN PRIVATE KEY-----\n{SECRET_LOOKING}\n",
        f"-----BEGIN SOMETHING ODD-----\n{SECRET_LOOKING}\n-----END SOMETHING ODD-----\n",
        SECRET_LOOKING,
        base64.b64encode(b"\x30\x82\x01\x00" + b"\x02" * 20).decode(),
    ],
)
def test_garbage_refused_without_echo(text):
    for loader, field in ((load_private_key, "private_key"), (load_certificate, "certificate")):
        with pytest.raises(CertificateError) as caught:
            loader(text)
        message = str(caught.value)
        assert message.startswith(field)
        assert SECRET_LOOKING[:24] not in message and "secretkeymaterial" not in message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=600))
def test_any_bytes_give_a_certificate_error_or_a_key(data):
    for loader in (load_private_key, load_certificate):
        for value in (
            data,
            "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(data).decode() + "\n-----END PRIVATE KEY-----",
        ):
            try:
                loader(value)
            except CertificateError as exc:
                assert base64.b64encode(data).decode()[:40] not in str(exc) or len(data) < 8


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=400), st.integers(min_value=0, max_value=255))
def test_corrupted_real_key_never_crashes(position, value):
    der = bytearray(keypair(2048).private_bytes(serialization.Encoding.DER, PKCS1, serialization.NoEncryption()))
    der[position % len(der)] = value
    try:
        load_private_key(bytes(der))
    except CertificateError:
        pass


def test_signing_is_fast_enough_for_3072_bits():
    key = keypair(3072)
    credential = ClientCertificate(pem_cert(make_cert(key)), pem_key(key))
    started = time.perf_counter()
    for _ in range(5):
        credential.form(TOKEN_URL, CLIENT_ID)
    per_token = (time.perf_counter() - started) / 5
    assert per_token < 0.2, f"{per_token * 1000:.0f} ms per assertion"


def test_repr_never_shows_the_key():
    key = keypair(2048)
    credential = ClientCertificate(pem_cert(make_cert(key)), pem_key(key))
    private = load_private_key(pem_key(key))
    text = repr(credential) + repr(private) + str(credential.__dict__.get("certificate"))
    numbers = key.private_numbers()
    for secret in (numbers.d, numbers.p, numbers.q):
        assert str(secret)[:30] not in text
