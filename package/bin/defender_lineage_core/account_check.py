"""The account check on save: one token, then each Graph security resource once with ``$top=1``,
and, when the account has a hunting input, one tiny advanced hunting query (``hunting=True``).

Every failure becomes an ``AccountCheckError`` whose message tells the admin what to change and
where (tenant, client id, secret, certificate, permission and consent, cloud, proxy, network).
Messages are built from status codes, Entra's AADSTS number, host names and the account's public
identifiers only; they never carry the secret, the key, a token or the proxy password.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import requests

from .certificate import CertificateError, ClientCertificate
from .credential_binding import ENCRYPTED_FIELDS, PLACEHOLDERS, refuse_redirected_credential
from .credentials import Credential, credential_for
from .errors import (
    REQUIRED_PERMISSION,
    AuthError,
    ConfigError,
    GraphError,
    MalformedResponse,
    MissingPermission,
    TransientError,
    graph_error,
)
from .graph_client import GraphClient, account_session, client_for_account
from .proxy import proxy_auth_message
from .settings import Account, account_from_conf
from .tenants import CONSENT_CODES, admin_consent_url, permissions_for

RESOURCES = ("alerts_v2", "incidents")
HUNTING_RESOURCE = "runHuntingQuery"
# The cheapest query that proves ThreatHunting.Read.All: one row of the smallest table, one hour.
HUNTING_PROBE = {"Query": "AlertInfo | take 1", "Timespan": "PT1H"}
CHECK_TIMEOUT = 15.0  # seconds per request: the whole check must finish inside splunkd's REST call
CHECK_RETRIES = 1
MAX_PAUSE = 2.0  # seconds: the check honours Retry-After only this long


class AccountCheckError(ConfigError):
    """The account was refused; ``kind`` names the cause (for tests and logs)."""

    def __init__(self, message: str, kind: str, code: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code


@dataclass
class CheckResult:
    account: str
    tenant_id: str
    resources: Dict[str, int] = field(default_factory=dict)  # resource -> items on the first page (0 or 1)
    warnings: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.warnings


def merge_saved_account(payload: Mapping[str, Any], stored: Mapping[str, Any]) -> Dict[str, str]:
    """The account as it will be after an edit: stored values, overlaid with what the edit sends.

    UCC sends an encrypted field left unchanged as ``******`` (or omits it); then the stored,
    decrypted value applies. An empty value clears the field, as UCC's update does.
    """
    merged = {k: str(v) for k, v in stored.items() if isinstance(v, str) and not k.startswith("eai:")}
    for key, value in payload.items():
        if value is None:
            continue
        text = str(value)
        if key in ENCRYPTED_FIELDS and text in PLACEHOLDERS:
            continue  # unchanged; an empty value clears the field, as UCC stores it
        merged[key] = text
    return merged


class _RecordingSession(requests.Session):
    """Remembers the last transport exception, which GraphClient reports only by its type."""

    def __init__(self) -> None:
        super().__init__()
        self.last_error: Optional[BaseException] = None
        self.last_url = ""

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> requests.Response:
        self.last_url = url.decode() if isinstance(url, bytes) else str(url)
        try:
            return super().request(method, url, *args, **kwargs)
        except requests.RequestException as exc:
            self.last_error = exc
            raise


def check_account(
    account: Account,
    proxies: Optional[Mapping[str, str]] = None,
    timeout: float = CHECK_TIMEOUT,
    resources: Sequence[str] = RESOURCES,
    logger: Optional[logging.Logger] = None,
    user_agent: str = "",
    hunting: bool = False,
) -> CheckResult:
    """Prove the account works, or raise ``AccountCheckError`` saying what to fix.

    ``hunting``: also run one tiny advanced hunting query, to prove ThreatHunting.Read.All (the
    REST handler asks for it when a ``defender_hunting`` input uses the account).
    """
    started = time.monotonic()
    log = logger or logging.getLogger(__name__)
    secrets = [s for s in (account.client_secret, account.private_key) if s]
    try:
        credential = credential_for(account)
    except CertificateError as exc:
        raise AccountCheckError(str(exc), "certificate_invalid") from None
    if isinstance(credential, ClientCertificate):
        problem = credential.expiry_problem()
        if problem:
            raise AccountCheckError(problem[0].upper() + problem[1:] + ".", "certificate_expired")
    session = _RecordingSession()
    account_session(proxies or {}, user_agent, session)
    client = client_for_account(
        account,
        credential,
        session,
        timeout=timeout,
        exchange_timeout=timeout,  # the check's answers are tiny: one timeout bounds a whole exchange
        max_retries=CHECK_RETRIES,
        logger=log,
        sleep=lambda seconds: time.sleep(min(seconds, MAX_PAUSE)),
    )
    result = CheckResult(account.name, account.tenant_id)
    context = _Context(account, credential, proxies or {}, session)
    try:
        client.token()
    except GraphError as exc:
        raise _scrub(context.token_failure(exc), secrets) from None
    missing: List[str] = []
    for resource in resources:
        try:
            page = client.get_page(client.resource_url(resource), resource, {"$top": "1"})
        except MissingPermission:
            missing.append(resource)
            continue
        except TransientError as exc:
            if exc.status:  # Graph answered 429 or 5xx: it is there and the account got a token
                result.warnings.append(
                    f"Graph answered {resource} with HTTP {exc.status} (busy or unavailable); the token "
                    "works, collection will retry."
                )
                continue
            raise _scrub(context.network_failure(account.endpoints.graph_root, "Microsoft Graph"), secrets) from None
        except GraphError as exc:
            raise _scrub(context.graph_failure(exc, resource), secrets) from None
        result.resources[resource] = len(page.items)
    if hunting:
        try:
            result.resources[HUNTING_RESOURCE] = _probe_hunting(client)
        except MissingPermission:
            missing.append(HUNTING_RESOURCE)
        except TransientError as exc:
            if not exc.status:
                raise _scrub(
                    context.network_failure(account.endpoints.graph_root, "Microsoft Graph"), secrets
                ) from None
            result.warnings.append(
                f"Graph answered {HUNTING_RESOURCE} with HTTP {exc.status} (busy, throttled or over the hunting "
                "quota); the token works, collection will retry."
            )
        except GraphError as exc:
            raise _scrub(context.graph_failure(exc, HUNTING_RESOURCE), secrets) from None
    if missing:
        raise _scrub(_missing_permissions(missing), secrets)
    result.seconds = time.monotonic() - started
    return result


def _probe_hunting(client: GraphClient) -> int:
    """Rows of the probe query (0 or 1); raises the GraphError Graph's answer means."""
    response = client.send_with_token(
        "POST",
        client.resource_url(HUNTING_RESOURCE),
        HUNTING_RESOURCE,
        {"Content-Type": "application/json", "Accept": "application/json"},
        data=json.dumps(HUNTING_PROBE).encode("utf-8"),
    )
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # RecursionError: an answer nested too deep to read
        body = None
    if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("results"), list):
        return len(body["results"])
    if response.status_code == 200:
        raise MalformedResponse(f"{HUNTING_RESOURCE} answered without results", status=200, resource=HUNTING_RESOURCE)
    if response.status_code in (429, 500, 502, 503, 504):
        raise TransientError(f"{HUNTING_RESOURCE}: HTTP {response.status_code}", status=response.status_code)
    raise graph_error(response.status_code, body, HUNTING_RESOURCE)


def check_saved_account(
    name: str,
    payload: Mapping[str, Any],
    stored: Mapping[str, Any],
    proxies: Optional[Mapping[str, str]] = None,
    **options: Any,
) -> CheckResult:
    """What the REST handler calls on create and edit."""
    refuse_redirected_credential(payload, stored)  # before anything is sent anywhere
    account = account_from_conf(name, merge_saved_account(payload, stored))
    return check_account(account, proxies=proxies, **options)


def check_tenant(
    account: Account,
    label: str,
    tenant_id: str,
    proxies: Optional[Mapping[str, str]] = None,
    hunting: bool = False,
    **options: Any,
) -> CheckResult:
    """Prove the account's app registration reaches a customer tenant: a token in that tenant, then
    ``$top=1`` on each resource (and the hunting probe when ``hunting``).

    When the app is not consented there, or is consented without the permissions, the error gives the
    exact fix: the admin-consent URL for that tenant, client id and cloud, and the permissions it grants.
    """
    reached = dataclasses.replace(account, tenant_id=tenant_id.strip().lower())
    resources = list(RESOURCES) + ([HUNTING_RESOURCE] if hunting else [])
    try:
        result = check_account(reached, proxies=proxies, hunting=hunting, **options)
    except AccountCheckError as exc:
        if exc.code in CONSENT_CODES or exc.kind == "missing_consent":
            raise _consent_needed(reached, label, resources, exc.code, consented=False) from None
        if exc.kind == "missing_permission":
            raise _consent_needed(reached, label, resources, exc.code, consented=True) from None
        raise
    result.account = label
    return result


def _consent_needed(
    account: Account, label: str, resources: Sequence[str], code: str, consented: bool
) -> AccountCheckError:
    url = admin_consent_url(account.endpoints.login_root, account.tenant_id, account.client_id)
    permissions = ", ".join(permissions_for(resources))
    if consented:
        what = (
            f"The app {account.client_id} is consented in tenant '{label}' ({account.tenant_id}) but Microsoft Graph "
            f"refused it (HTTP 403): the consent predates permissions the app now needs."
        )
    else:
        what = f"The app {account.client_id} is not consented in tenant '{label}' ({account.tenant_id}) ({code})."
    return AccountCheckError(
        f"{what} Fix: a Global Administrator of that tenant opens {url} and accepts; this grants the Microsoft "
        f"Graph application permissions {permissions} (they must be listed under API permissions on the app "
        "registration, which must be multi-tenant: Authentication > Supported account types > Accounts in any "
        "organizational directory). Delegated (GDAP) partner access does not grant application permissions.",
        "missing_consent",
        code,
    )


# -- mapping -----------------------------------------------------------------------------------

_CLOUD_LABEL = {
    "https://login.microsoftonline.com": "in the global cloud",
    "https://login.microsoftonline.us": "in the US Government cloud",
}


class _Context:
    def __init__(
        self,
        account: Account,
        credential: Credential,
        proxies: Mapping[str, str],
        session: _RecordingSession,
    ) -> None:
        self.account = account
        self.credential = credential
        self.proxies = dict(proxies)
        self.session = session

    # Entra ID ---------------------------------------------------------------------------------
    def token_failure(self, exc: GraphError) -> AccountCheckError:
        account = self.account
        code = exc.code or ""
        if isinstance(exc, TransientError) and not exc.status:
            return self.network_failure(account.endpoints.login_root, "Entra ID")
        if exc.status == 407:
            return self.proxy_auth(exc.code)
        number = code[len("AADSTS") :] if code.startswith("AADSTS") else ""
        cloud = _CLOUD_LABEL.get(account.endpoints.login_root, f"at {account.endpoints.login_root}")
        label = f"({code})" if number else f"(HTTP {exc.status})"
        thumb = self.credential.describe() if isinstance(self.credential, ClientCertificate) else ""
        messages = {
            "90002": (
                "unknown_tenant",
                f"Entra ID does not know the tenant {account.tenant_id} {cloud} {label}: copy the "
                "Directory (tenant) ID from the app registration's Overview page, and check Cloud.",
            ),
            "900023": (
                "unknown_tenant",
                f"{account.tenant_id} is not a valid tenant identifier {label}: copy the Directory (tenant) ID "
                "from the app registration's Overview page.",
            ),
            "700016": (
                "wrong_client_id",
                f"The application (client) ID {account.client_id} was not found in tenant {account.tenant_id} "
                f"{label}: copy the Application (client) ID from the app registration's Overview page, and check "
                "that the app is registered in this tenant and cloud.",
            ),
            "7000215": (
                "wrong_secret",
                f"The client secret is wrong {label}: paste the secret's Value, not its Secret ID, from "
                "Certificates & secrets on the app registration (a Value is shown only right after the secret "
                "is created).",
            ),
            "7000222": (
                "expired_secret",
                f"The client secret has expired {label}: create a new client secret under Certificates & secrets "
                "on the app registration and paste its Value here.",
            ),
            "700027": (
                "certificate_not_registered",
                f"Entra ID could not verify the certificate assertion {label}: upload the certificate {thumb} "
                "under Certificates & secrets on the app registration, and check that the private key belongs "
                "to it.",
            ),
            "700024": (
                "assertion_invalid",
                f"Entra ID refused the certificate assertion as outside its validity time {label}: set this "
                "Splunk host's clock right (NTP).",
            ),
            "700021": (
                "assertion_invalid",
                f"Entra ID refused the certificate assertion {label}: its issuer does not match the client ID "
                f"{account.client_id}.",
            ),
            "7000112": (
                "app_disabled",
                f"The application {account.client_id} is disabled in the tenant {label}: an administrator must "
                "enable it (Enterprise applications > the app > Properties > Enabled for users to sign in).",
            ),
            "7000229": (
                "missing_consent",
                f"The application has no service principal in tenant {account.tenant_id} {label}: an administrator "
                "must grant admin consent for the app's Microsoft Graph permissions in this tenant.",
            ),
            "500011": (
                "wrong_cloud",
                f"Microsoft Graph ({account.endpoints.graph_root}) is not known in this tenant {label}: check Cloud.",
            ),
            "1002012": (
                "wrong_cloud",
                f"Entra ID refused the scope {account.endpoints.scope} {label}: check Cloud.",
            ),
            "53003": (
                "blocked_by_policy",
                f"A Conditional Access policy for workload identities blocked the sign-in {label}: allow this "
                "Splunk host's outbound address in the policy.",
            ),
        }
        for assertion_code in ("50027", "700025", "7000218"):
            messages[assertion_code] = (
                "assertion_invalid",
                f"Entra ID refused the client credential {label}; check Authentication and its fields.",
            )
        if number in messages:
            kind, text = messages[number]
            return AccountCheckError(text, kind, code)
        if exc.status in (200, 404, 405) or (not number and exc.status < 500 and "HTTP" in code):
            return AccountCheckError(
                f"{account.endpoints.login_root} does not answer like Entra ID's token endpoint (HTTP {exc.status}): "
                "check Login URL and Cloud, and whether a proxy or firewall intercepts the request.",
                "not_entra",
                code,
            )
        if exc.status >= 500 or exc.status == 429:
            return AccountCheckError(
                f"Entra ID is busy or unavailable (HTTP {exc.status}): try saving the account again in a few minutes.",
                "entra_unavailable",
                code,
            )
        return AccountCheckError(f"{exc}", "auth_failed", code)

    # Graph ------------------------------------------------------------------------------------
    def graph_failure(self, exc: GraphError, resource: str) -> AccountCheckError:
        graph = self.account.endpoints.graph_root
        if exc.status == 407:
            return self.proxy_auth(exc.code)
        if isinstance(exc, AuthError) or exc.status == 401:
            return AccountCheckError(
                f"Microsoft Graph ({graph}) refused the access token for {resource} (HTTP 401 {exc.code}): the app "
                "is probably registered in another Microsoft cloud; check Cloud.",
                "token_refused",
                exc.code,
            )
        if isinstance(exc, MalformedResponse):
            return AccountCheckError(
                f"{graph} answered {resource} with something that is not a Graph page: check Graph URL, and "
                "whether a proxy or captive portal intercepts the request.",
                "not_graph",
                exc.code,
            )
        if exc.status in (400, 404, 405):
            return AccountCheckError(
                f"{graph} does not serve the Graph security API ({resource}: HTTP {exc.status} {exc.code}): "
                "check Graph URL and Cloud.",
                "not_graph",
                exc.code,
            )
        return AccountCheckError(str(exc), "graph_failed", exc.code)

    # transport --------------------------------------------------------------------------------
    def proxy_label(self) -> str:
        url = self.proxies.get("https") or self.proxies.get("http") or ""
        parts = urlsplit(url)
        if not parts.hostname:
            return "the proxy"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # never the netloc: userinfo
        return f"{host}:{parts.port}"

    def proxy_auth(self, code: str = "", cause: str = "HTTP 407") -> AccountCheckError:
        return AccountCheckError(
            proxy_auth_message(self.proxy_label(), cause),
            "proxy_auth",
            code or cause,
        )

    def network_failure(self, root: str, service: str) -> AccountCheckError:
        error = self.session.last_error
        parts = urlsplit(self.session.last_url or root)
        target = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        proxied = bool(self.proxies)
        proxy = self.proxy_label()
        chain = list(_chain(error)) if error is not None else []
        texts = " | ".join(str(e) for e in chain)
        tunnel = _tunnel_status(texts)
        if tunnel == 407:
            return self.proxy_auth()
        # PySocks' errors, matched by name (PySocks is imported only when SOCKS is used).
        if any(type(e).__name__ == "SOCKS5AuthError" for e in chain):
            return self.proxy_auth(cause="SOCKS5 authentication failed")  # RFC 1929: status not 0
        if self.proxies.get("https", "").startswith("socks") and "Connection closed unexpectedly" in texts:
            # Some SOCKS5 servers (pproxy among them) close the connection on bad credentials instead
            # of answering RFC 1929's failure status; a server that is not SOCKS5 at all does the same.
            return AccountCheckError(
                f"The proxy {self.proxy_label()} closed the connection during the SOCKS5 handshake: check the proxy "
                "username and password, and that it is a SOCKS5 proxy (Proxy type), on the Configuration > Proxy tab.",
                "proxy_auth",
                "SOCKS5",
            )
        if tunnel:
            return AccountCheckError(
                f"The proxy {proxy} refused to connect to {target} (HTTP {tunnel}): allow {parts.hostname} on the "
                "proxy.",
                "proxy_refused",
            )
        is_proxy = any(isinstance(e, requests.exceptions.ProxyError) for e in chain)
        if _is_name_resolution(chain, texts):
            if is_proxy:
                return AccountCheckError(
                    f"The proxy host {proxy.rsplit(':', 1)[0]} cannot be resolved (DNS): check the proxy host on the "
                    "Configuration > Proxy tab.",
                    "name_resolution",
                )
            return AccountCheckError(
                f"The name {parts.hostname} cannot be resolved (DNS): check this Splunk host's DNS, or configure the "
                "proxy if outbound traffic must go through one.",
                "name_resolution",
            )
        if is_proxy:
            return AccountCheckError(
                f"The proxy {proxy} cannot be reached: check the proxy host, port and type on the Configuration > "
                "Proxy tab.",
                "proxy_unreachable",
            )
        if any(isinstance(e, requests.exceptions.SSLError) for e in chain):
            return AccountCheckError(
                f"The TLS connection to {target} failed (certificate verification): if a proxy or firewall inspects "
                "TLS, its CA must be trusted by Splunk's Python.",
                "tls",
            )
        via = f" through the proxy {proxy}" if proxied else ""
        if any(isinstance(e, (requests.Timeout, socket.timeout, TimeoutError)) for e in chain):
            return AccountCheckError(
                f"{service} ({target}) did not answer{via} in time: a firewall may block outbound HTTPS from this "
                "Splunk host; configure the proxy if traffic must go through one.",
                "network_timeout",
            )
        if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in texts.lower():
            return AccountCheckError(
                f"{service} ({target}) refused the connection{via}: check the Cloud (and for a custom cloud the "
                "Login URL and Graph URL), and that outbound HTTPS is allowed.",
                "connection_refused",
            )
        return AccountCheckError(
            f"{service} ({target}) cannot be reached{via}: check this Splunk host's network and proxy settings.",
            "network",
        )


def _missing_permissions(resources: Sequence[str]) -> AccountCheckError:
    needed = [f"{REQUIRED_PERMISSION[r]} ({r})" for r in resources]
    return AccountCheckError(
        "Microsoft Graph refused "
        + " and ".join(resources)
        + " (HTTP 403): the app registration needs the Microsoft Graph application permission"
        + ("s " if len(needed) > 1 else " ")
        + " and ".join(needed)
        + ", with admin consent granted: add "
        + ("them" if len(needed) > 1 else "it")
        + " under API permissions as Application permissions, then Grant admin consent for the tenant.",
        "missing_permission",
        "Forbidden",
    )


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set = set()
    todo: List[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        todo += [e for e in linked if isinstance(e, BaseException)]


def _tunnel_status(texts: str) -> int:
    marker = "Tunnel connection failed: "
    at = texts.find(marker)
    if at < 0:
        return 0
    digits = texts[at + len(marker) : at + len(marker) + 3]
    return int(digits) if digits.isdigit() else 0


def _is_name_resolution(chain: Sequence[BaseException], texts: str) -> bool:
    if any(isinstance(e, socket.gaierror) or "NameResolution" in type(e).__name__ for e in chain):
        return True
    lowered = texts.lower()
    return any(
        marker in lowered
        for marker in ("failed to resolve", "name or service not known", "nodename nor servname", "getaddrinfo failed")
    )


def _scrub(error: AccountCheckError, secrets: Sequence[str]) -> AccountCheckError:
    """Belt and braces: no stored secret may ever appear in a message shown or logged."""
    text = str(error)
    for secret in secrets:
        for piece in [secret] + [
            line.strip()
            for line in secret.splitlines()
            if len(line.strip()) >= 16 and not line.strip().startswith("-----")
        ]:
            if piece and piece in text:
                text = text.replace(piece, "***")
    if text == str(error):
        return error
    return AccountCheckError(text, error.kind, error.code)
