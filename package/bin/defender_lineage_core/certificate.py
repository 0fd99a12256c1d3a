"""Certificate credentials for Entra ID: the client-assertion JWT, signed in pure Python.

The add-on's ``lib/`` stays pure Python (Splunk ships no ``cryptography`` for add-ons), so this
module parses the account's PEM or DER material with a small DER reader and signs with RSA from
the standard library (``hashlib``, ``pow`` with the Chinese remainder theorem, blinded).

What Entra ID expects (client credentials with a certificate):

* form fields ``client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`` and
  ``client_assertion=<JWT>``, instead of ``client_secret``;
* the JWT header ``{"alg": "PS256", "typ": "JWT", "x5t#S256": <base64url SHA-256 of the
  certificate's DER>}``;
* the claims ``aud`` = the token endpoint URL of the account's cloud, ``iss`` = ``sub`` = the
  client id, ``jti`` = a fresh GUID, ``nbf`` = ``iat`` = now, ``exp`` = now + 10 minutes.

Why PS256 with ``x5t#S256`` by default: it is the form Microsoft's certificate-credential page
documents today, it uses RSASSA-PSS (the padding Microsoft asks for) and a SHA-256 thumbprint
rather than SHA-1. The older form, RS256 (RSASSA-PKCS1-v1_5) with the SHA-1 ``x5t``, is what
MSAL libraries long sent and Entra still accepts; it is available as ``algorithm="RS256"`` for an
authority that would refuse PSS, but the add-on never falls back to it on its own: a rejected
assertion is nearly always a certificate that is not uploaded to the app registration, which a
second form would not cure, and a silent retry would double the token requests and hide the cause.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Dict, List, Optional, Tuple, Union

from .errors import ConfigError

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 600  # seconds; Entra recommends at most 5 to 10 minutes
MIN_KEY_BITS = 2048  # Entra ID refuses shorter RSA keys
ALGORITHMS = ("PS256", "RS256")
PSS_SALT_LENGTH = 32  # RFC 7518 §3.5: PS256 uses a salt as long as the SHA-256 output

# DER encodings of the object identifiers this module recognises.
_OID_RSA = bytes.fromhex("2a864886f70d010101")  # 1.2.840.113549.1.1.1 rsaEncryption
_OID_RSA_PSS = bytes.fromhex("2a864886f70d01010a")  # 1.2.840.113549.1.1.10 id-RSASSA-PSS
_OID_EC = bytes.fromhex("2a8648ce3d0201")  # 1.2.840.10045.2.1 id-ecPublicKey
_OID_ED25519 = bytes.fromhex("2b6570")  # 1.3.101.112
_OID_CN = bytes.fromhex("550403")  # 2.5.4.3 commonName
# DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")

_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]{1,40})-----(.*?)-----END \1-----",
    re.DOTALL,
)
_KNOWN_LABELS = {
    "CERTIFICATE",
    "TRUSTED CERTIFICATE",
    "PRIVATE KEY",
    "RSA PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
    "OPENSSH PRIVATE KEY",
    "PUBLIC KEY",
    "RSA PUBLIC KEY",
    "CERTIFICATE REQUEST",
    "NEW CERTIFICATE REQUEST",
}
_CONVERT = (
    "paste the unencrypted PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----); "
    "from a .pfx/.p12 file: openssl pkcs12 -in app.pfx -nodes -nocerts -out key.pem"
)


class CertificateError(ConfigError):
    """The certificate or private key cannot be used. The message never quotes the material."""


# -- DER ---------------------------------------------------------------------------------------


class _DerError(ValueError):
    pass


class _Der:
    """A cursor over DER bytes: just enough ASN.1 for keys and certificates."""

    def __init__(self, data: bytes, start: int = 0, end: Optional[int] = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def peek_tag(self) -> int:
        if self.pos >= self.end:
            raise _DerError("unexpected end")
        return self.data[self.pos]

    def read(self, expected: Optional[int] = None) -> Tuple[int, int, int]:
        """tag, start and end of the next element's contents."""
        if self.pos + 2 > self.end:
            raise _DerError("truncated element")
        tag = self.data[self.pos]
        if tag & 0x1F == 0x1F:
            raise _DerError("multi-byte tags are not used here")
        length = self.data[self.pos + 1]
        pos = self.pos + 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > self.end:
                raise _DerError("bad length")
            length = int.from_bytes(self.data[pos : pos + count], "big")
            pos += count
        if pos + length > self.end:
            raise _DerError("element overruns its parent")
        if expected is not None and tag != expected:
            raise _DerError(f"expected tag {expected:#x}, found {tag:#x}")
        self.pos = pos + length
        return tag, pos, pos + length

    def element_bytes(self) -> bytes:
        """The next element whole (tag, length and contents)."""
        begin = self.pos
        self.read()
        return self.data[begin : self.pos]

    def sequence(self, tag: int = 0x30) -> _Der:
        _, start, end = self.read(tag)
        return _Der(self.data, start, end)

    def integer(self) -> int:
        _, start, end = self.read(0x02)
        if start == end:
            raise _DerError("empty integer")
        return int.from_bytes(self.data[start:end], "big", signed=True)

    def octets(self, tag: int = 0x04) -> bytes:
        _, start, end = self.read(tag)
        return self.data[start:end]

    def skip(self) -> None:
        self.read()


# -- PEM ---------------------------------------------------------------------------------------


def _pem_blocks(text: str) -> List[Tuple[str, str]]:
    """(label, body) of every PEM block, bodies still with their headers and whitespace."""
    return [(m.group(1).strip(), m.group(2)) for m in _PEM_BLOCK.finditer(text)]


def _b64_body(body: str, what: str) -> bytes:
    lines = [line for line in re.split(r"[\r\n]+", body) if line.strip()]
    if any(":" in line for line in lines):
        if any(line.strip().lower().startswith("proc-type:") and "ENCRYPTED" in line.upper() for line in lines):
            raise CertificateError(f"{what} is encrypted with a passphrase, which the add-on cannot use: {_CONVERT}.")
        lines = [line for line in lines if ":" not in line]
    compact = re.sub(r"\s+", "", "".join(lines))
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError(f"{what} is not valid PEM: its base64 text is damaged.") from None


def _material(value: Union[str, bytes], what: str, labels: Tuple[str, ...]) -> Tuple[str, bytes]:
    """The first PEM block with one of ``labels`` (or bare base64 / DER), as (label, DER)."""
    if isinstance(value, bytes):
        if value[:1] == b"\x30":
            return "", value
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise CertificateError(f"{what} is neither PEM text nor DER.") from None
    blocks = _pem_blocks(value)
    for label, body in blocks:
        if label in labels:
            return label, _b64_body(body, what)
    if blocks:
        found = sorted({label if label in _KNOWN_LABELS else "an unrecognised block" for label, _ in blocks})
        raise CertificateError(f"{what} holds {', '.join(found)} but no {' or '.join(labels)} block.")
    if "-----BEGIN" in value:
        raise CertificateError(f"{what} is not valid PEM: a BEGIN line has no matching END line.")
    compact = re.sub(r"\s+", "", value)
    if not compact:
        raise CertificateError(f"{what} is empty.")
    try:
        der = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if der[:1] != b"\x30":
        raise CertificateError(f"{what} is neither PEM nor base64 DER.")
    return "", der


# -- RSA keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RsaPublicKey:
    n: int
    e: int

    @property
    def bits(self) -> int:
        return self.n.bit_length()


@dataclass(frozen=True)
class RsaPrivateKey:
    n: int
    e: int
    d: int = field(repr=False)
    p: int = field(repr=False)
    q: int = field(repr=False)
    dp: int = field(repr=False)
    dq: int = field(repr=False)
    qinv: int = field(repr=False)

    @property
    def bits(self) -> int:
        return self.n.bit_length()

    @property
    def size(self) -> int:
        return (self.n.bit_length() + 7) // 8

    @property
    def public(self) -> RsaPublicKey:
        return RsaPublicKey(self.n, self.e)

    def raw_sign(self, m: int) -> int:
        """RSASP1 with CRT and blinding; checked with the public exponent before it leaves."""
        if not 0 <= m < self.n:
            raise ValueError("message representative out of range")
        while True:
            r = secrets.randbelow(self.n - 2) + 2
            try:
                r_inv = pow(r, -1, self.n)
            except ValueError:  # r shares a factor with n: astronomically unlikely
                continue
            break
        c = (m * pow(r, self.e, self.n)) % self.n
        s1 = pow(c % self.p, self.dp, self.p)
        s2 = pow(c % self.q, self.dq, self.q)
        h = (self.qinv * (s1 - s2)) % self.p
        s = ((s2 + h * self.q) * r_inv) % self.n
        if pow(s, self.e, self.n) != m:
            # A miscomputed CRT signature would reveal a factor of n: never let one out.
            raise CertificateError("private_key produced an invalid signature; the key is damaged.")
        return s


def _rsa_private_from_pkcs1(der: bytes) -> RsaPrivateKey:
    seq = _Der(der).sequence()
    version = seq.integer()
    if version not in (0, 1):
        raise _DerError("unknown RSAPrivateKey version")
    n, e, d, p, q, dp, dq, qinv = (seq.integer() for _ in range(8))
    return RsaPrivateKey(n, e, d, p, q, dp, dq, qinv)


def _check_private(key: RsaPrivateKey, what: str) -> RsaPrivateKey:
    values = (key.n, key.e, key.d, key.p, key.q, key.dp, key.dq, key.qinv)
    if any(v <= 0 for v in values) or key.p * key.q != key.n:
        raise CertificateError(f"{what} is damaged: its RSA numbers do not agree.")
    if key.dp != key.d % (key.p - 1) or key.dq != key.d % (key.q - 1) or (key.qinv * key.q) % key.p != 1:
        raise CertificateError(f"{what} is damaged: its RSA numbers do not agree.")
    if (key.e * key.dp) % (key.p - 1) != 1 or (key.e * key.dq) % (key.q - 1) != 1:
        raise CertificateError(f"{what} is damaged: its RSA numbers do not agree.")
    if key.bits < MIN_KEY_BITS:
        raise CertificateError(
            f"{what} is a {key.bits}-bit RSA key; Entra ID requires at least {MIN_KEY_BITS} bits: "
            "create a new key and certificate."
        )
    return key


def load_private_key(value: Union[str, bytes], what: str = "private_key") -> RsaPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or DER. Encrypted keys are refused."""
    labels = ("RSA PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")
    label, der = _material(value, what, labels)
    if label == "ENCRYPTED PRIVATE KEY":
        raise CertificateError(f"{what} is encrypted with a passphrase, which the add-on cannot use: {_CONVERT}.")
    if label in ("EC PRIVATE KEY", "OPENSSH PRIVATE KEY"):
        raise CertificateError(f"{what} is not an RSA key in PKCS#1 or PKCS#8 form: {_CONVERT}.")
    try:
        if label == "RSA PRIVATE KEY":
            key = _rsa_private_from_pkcs1(der)
        else:
            key = _private_from_der(der, what)
    except (_DerError, IndexError, ValueError):
        raise CertificateError(f"{what} could not be read as an RSA private key: {_CONVERT}.") from None
    return _check_private(key, what)


def _private_from_der(der: bytes, what: str) -> RsaPrivateKey:
    """PKCS#8 PrivateKeyInfo, else PKCS#1 RSAPrivateKey; EncryptedPrivateKeyInfo is named."""
    outer = _Der(der).sequence()
    if _is_encrypted_pkcs8(outer):
        raise CertificateError(f"{what} is encrypted with a passphrase, which the add-on cannot use: {_CONVERT}.")
    outer.integer()  # version
    if outer.peek_tag() == 0x02:  # a PKCS#1 RSAPrivateKey: the version is followed by the modulus
        return _rsa_private_from_pkcs1(der)
    algorithm = outer.sequence()
    oid = algorithm.octets(0x06)
    if oid in (_OID_EC, _OID_ED25519):
        raise CertificateError(f"{what} is not an RSA key (Entra certificate credentials here need RSA): {_CONVERT}.")
    if oid not in (_OID_RSA, _OID_RSA_PSS):
        raise _DerError("not an RSA key")
    return _rsa_private_from_pkcs1(outer.octets(0x04))


def _is_encrypted_pkcs8(outer: _Der) -> bool:
    """EncryptedPrivateKeyInfo ::= SEQUENCE { SEQUENCE { OID, params }, encryptedData OCTET STRING }."""
    probe = _Der(outer.data, outer.pos, outer.end)
    try:
        if probe.peek_tag() != 0x30:
            return False
        algorithm = probe.sequence()
        return algorithm.peek_tag() == 0x06 and probe.peek_tag() == 0x04
    except _DerError:
        return False


# -- X.509 -------------------------------------------------------------------------------------


def _time_value(tag: int, raw: bytes) -> datetime:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise _DerError("bad time")
    if not re.fullmatch(r"\d{14}Z", text):
        raise _DerError("bad time")
    return datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=timezone.utc)


def _common_name(name: _Der) -> str:
    found = ""
    while not name.at_end():
        rdn = name.sequence(0x31)
        while not rdn.at_end():
            attribute = rdn.sequence()
            oid = attribute.octets(0x06)
            tag, start, end = attribute.read()
            if oid == _OID_CN:
                raw = attribute.data[start:end]
                found = raw.decode("utf-16-be", "replace") if tag == 0x1E else raw.decode("utf-8", "replace")
    return found


@dataclass(frozen=True)
class Certificate:
    der: bytes = field(repr=False)
    public_key: RsaPublicKey = field(repr=False)
    subject: str
    not_before: datetime
    not_after: datetime

    @property
    def sha1(self) -> bytes:
        return hashlib.sha1(self.der).digest()  # noqa: S324 - the x5t thumbprint is SHA-1 by definition

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.der).digest()

    @property
    def thumbprint(self) -> str:
        """SHA-1 thumbprint in hex, as the Azure portal lists it under Certificates & secrets."""
        return self.sha1.hex().upper()

    @property
    def x5t(self) -> str:
        return b64url(self.sha1)

    @property
    def x5t_s256(self) -> str:
        return b64url(self.sha256)


def load_certificate(value: Union[str, bytes], what: str = "certificate") -> Certificate:
    """An X.509 certificate with an RSA public key, from PEM or DER."""
    _, der = _material(value, what, ("CERTIFICATE", "TRUSTED CERTIFICATE"))
    try:
        outer = _Der(der)
        cert_der = outer.element_bytes()
        cert = _Der(cert_der).sequence()
        tbs = cert.sequence()
        if tbs.peek_tag() == 0xA0:  # [0] EXPLICIT version
            tbs.skip()
        tbs.integer()  # serialNumber
        tbs.skip()  # signature AlgorithmIdentifier
        tbs.skip()  # issuer
        validity = tbs.sequence()
        tag, start, end = validity.read()
        not_before = _time_value(tag, validity.data[start:end])
        tag, start, end = validity.read()
        not_after = _time_value(tag, validity.data[start:end])
        subject = _common_name(tbs.sequence())
        spki = tbs.sequence()
        algorithm = spki.sequence().octets(0x06)
        if algorithm not in (_OID_RSA, _OID_RSA_PSS):
            raise CertificateError(
                f"{what} does not hold an RSA public key; create an RSA certificate (2048 bits or more)."
            )
        bits = spki.octets(0x03)
        if not bits or bits[0] != 0:
            raise _DerError("bad bit string")
        public = _Der(bits[1:]).sequence()
        n, e = public.integer(), public.integer()
    except (_DerError, IndexError, UnicodeDecodeError, ValueError):
        raise CertificateError(
            f"{what} could not be read as an X.509 certificate: paste the PEM certificate "
            "(-----BEGIN CERTIFICATE-----) that was uploaded to the app registration."
        ) from None
    if n <= 0 or e <= 0:
        raise CertificateError(f"{what} holds a damaged RSA public key.")
    return Certificate(cert_der, RsaPublicKey(n, e), subject, not_before, not_after)


# -- signatures --------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(out[:length])


def emsa_pss_encode(message: bytes, em_bits: int, salt: bytes) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with SHA-256 and MGF1-SHA-256."""
    m_hash = hashlib.sha256(message).digest()
    h_len, s_len = len(m_hash), len(salt)
    em_len = (em_bits + 7) // 8
    if em_len < h_len + s_len + 2:
        raise ValueError("key too short for PSS with this salt")
    h = hashlib.sha256(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - s_len - h_len - 2) + b"\x01" + salt
    masked = bytearray(a ^ b for a, b in zip(db, _mgf1_sha256(h, em_len - h_len - 1)))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    return bytes(masked) + h + b"\xbc"


def sign_pss_sha256(key: RsaPrivateKey, message: bytes, salt: Optional[bytes] = None) -> bytes:
    """RSASSA-PSS-SIGN with SHA-256, MGF1-SHA-256 and a 32-byte salt."""
    salt = secrets.token_bytes(PSS_SALT_LENGTH) if salt is None else salt
    em = emsa_pss_encode(message, key.bits - 1, salt)
    return key.raw_sign(int.from_bytes(em, "big")).to_bytes(key.size, "big")


def sign_pkcs1v15_sha256(key: RsaPrivateKey, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5-SIGN with SHA-256 (deterministic)."""
    t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    if key.size < len(t) + 11:
        raise ValueError("key too short")
    em = b"\x00\x01" + b"\xff" * (key.size - len(t) - 3) + b"\x00" + t
    return key.raw_sign(int.from_bytes(em, "big")).to_bytes(key.size, "big")


# -- the credential ----------------------------------------------------------------------------


def client_assertion(
    key: RsaPrivateKey,
    certificate: Certificate,
    token_url: str,
    client_id: str,
    now: Optional[float] = None,
    algorithm: str = "PS256",
    jti: Optional[str] = None,
) -> str:
    """The signed JWT Entra ID takes as ``client_assertion``."""
    issued = int(time.time() if now is None else now)
    if algorithm == "PS256":
        header: Dict[str, object] = {"alg": "PS256", "typ": "JWT", "x5t#S256": certificate.x5t_s256}
    elif algorithm == "RS256":
        header = {"alg": "RS256", "typ": "JWT", "x5t": certificate.x5t}
    else:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
    claims = {
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": jti or str(uuid.uuid4()),
        "nbf": issued,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = (_b64json(header) + "." + _b64json(claims)).encode("ascii")
    if algorithm == "PS256":
        signature = sign_pss_sha256(key, signing_input)
    else:
        signature = sign_pkcs1v15_sha256(key, signing_input)
    return signing_input.decode("ascii") + "." + b64url(signature)


def _b64json(value: Dict[str, object]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class ClientCertificate:
    """Certificate credential with the same interface as ``ClientSecret``.

    Parses and cross-checks the certificate and the key when built (a ``CertificateError`` names
    the field at fault), then signs a fresh assertion for every token request.
    """

    def __init__(
        self,
        certificate: Union[str, bytes],
        private_key: Union[str, bytes],
        algorithm: str = "PS256",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, not {algorithm!r}")
        self.certificate = load_certificate(_either(certificate, private_key, "CERTIFICATE-----"), "certificate")
        self._key = load_private_key(_either(private_key, certificate, "PRIVATE KEY-----"), "private_key")
        if self._key.public != self.certificate.public_key:
            raise CertificateError(
                "private_key does not belong to the certificate (their public keys differ): paste the key "
                f"that was created with the certificate {self.describe()}."
            )
        self.algorithm = algorithm
        self._clock = clock

    def describe(self) -> str:
        subject = f"CN={self.certificate.subject}, " if self.certificate.subject else ""
        return f"({subject}SHA-1 thumbprint {self.certificate.thumbprint})"

    def expiry_problem(self, now: Optional[datetime] = None) -> Optional[str]:
        """Why Entra would refuse this certificate on dates alone, or None."""
        now = now or datetime.now(timezone.utc)
        if now > self.certificate.not_after:
            return (
                f"the certificate {self.describe()} expired on {self.certificate.not_after:%Y-%m-%d %H:%M} UTC: "
                "create a new certificate, upload it to the app registration and update the account"
            )
        if now < self.certificate.not_before:
            return (
                f"the certificate {self.describe()} is valid only from "
                f"{self.certificate.not_before:%Y-%m-%d %H:%M} UTC: check this Splunk host's clock"
            )
        return None

    def assertion(self, token_url: str, client_id: str) -> str:
        return client_assertion(
            self._key, self.certificate, token_url, client_id, now=self._clock(), algorithm=self.algorithm
        )

    def form(self, token_url: str, client_id: str) -> Dict[str, str]:
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.assertion(token_url, client_id)}

    def __repr__(self) -> str:
        return f"ClientCertificate{self.describe()}"


def _either(own: Union[str, bytes], other: Union[str, bytes], marker: str) -> Union[str, bytes]:
    """Admins often paste one combined PEM file into both fields: take the block from either."""
    if isinstance(own, str) and marker not in own and isinstance(other, str) and marker in other:
        return other
    return own
