"""A loopback stand-in for Entra ID (client-credentials token endpoint) and Microsoft Graph security.

One ThreadingHTTPServer on 127.0.0.1 serves both `POST /{tenant}/oauth2/v2.0/token` and
`GET /v1.0/security/alerts_v2` / `GET /v1.0/security/incidents`, with HTTP/1.1 keep-alive.
It stops by itself after `max_lifetime` seconds, closing any open connections.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple
from urllib.parse import parse_qsl, urlsplit

from .faults import (
    HTML_PAGE,
    FaultContext,
    FaultPlan,
    FaultRule,
    gzip_bomb,
    with_bad_rows,
    with_expires_in,
    with_next_link,
)
from .hunting import HuntingFault, HuntingSettings, HuntingTables
from .tenant import DEFAULT_TENANT_ID, Collection, ItemVersion, SyntheticTenant
from .timeutil import format_ticks, parse_any, parse_literal
from .writes import COMMENTS_PATH, WriteRefused, handle_write, is_write

DEFAULT_CLIENT_ID = "0f6c9d2a-1b3e-4c5d-8e7f-9a0b1c2d3e4f"
DEFAULT_ROLES = ("SecurityAlert.Read.All", "SecurityIncident.Read.All", "ThreatHunting.Read.All")
REQUIRED_ROLES = {
    "alerts_v2": ("SecurityAlert.Read.All", "SecurityAlert.ReadWrite.All"),
    "incidents": ("SecurityIncident.Read.All", "SecurityIncident.ReadWrite.All"),
    "runHuntingQuery": ("ThreatHunting.Read.All",),
}
TOP_LIMITS = {"alerts_v2": (100, 2000), "incidents": (20, 50)}
JSON_GRAPH = "application/json; odata.metadata=minimal"
JSON_ENTRA = "application/json; charset=utf-8"
PREFER_UNKNOWN = "include-unknown-enum-members"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_OPTIONS = {"$filter", "$top", "$skip", "$orderby", "$expand", "$count", "$skiptoken"}
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
GRAPH_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Forbidden",
    404: "ResourceNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
TRANSPORT_KINDS = ("trickle", "trickle_head", "gzip_bomb", "self_link", "token_expires", "html")
_TOKEN_PATH = re.compile(r"^/([^/]+)/oauth2/v2\.0/token/?$")
_COLLECTION_PATH = re.compile(r"^/v1\.0/security/(alerts_v2|incidents)(?:/([^/]+))?/?$")
_HUNTING_PATH = re.compile(r"^/v1\.0/security/runHuntingQuery/?$")
_CLAUSE = re.compile(r"^\(?\s*lastUpdateDateTime\s+(ge|gt|le|lt)\s+(\S+?)\s*\)?$")

AssertionVerifier = Callable[[str, Dict[str, Any], Dict[str, Any], "GraphSimulator"], Optional[str]]


class RequestRecord:
    """One request as the simulator saw it (secrets redacted)."""

    __slots__ = ("fault", "form", "headers", "index", "method", "path", "query", "resource", "status", "time")

    def __init__(
        self,
        method: str,
        path: str,
        query: Dict[str, str],
        headers: Dict[str, str],
        status: int,
        time: float,
        form: Optional[Dict[str, str]] = None,
        resource: str = "other",
        fault: Optional[str] = None,
        index: int = -1,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.status = status  # 0 when the connection was reset without a response
        self.time = time  # epoch seconds when the request arrived
        self.form = form  # token requests: the form, client_secret/client_assertion redacted
        self.resource = resource  # token | alerts_v2 | incidents | other
        self.fault = fault  # kind of the injected fault, if any
        self.index = index

    def header(self, name: str) -> Optional[str]:
        low = name.lower()
        for key, value in self.headers.items():
            if key.lower() == low:
                return value
        return None

    def __repr__(self) -> str:
        fault = f" fault={self.fault}" if self.fault else ""
        return f"RequestRecord({self.method} {self.path} {self.query} -> {self.status}{fault})"


def _b64url_json(part: str) -> Dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def default_assertion_verifier(
    assertion: str, header: Dict[str, Any], claims: Dict[str, Any], sim: GraphSimulator
) -> Optional[str]:
    """Accept any well-formed JWT whose iss and sub are the client id (no signature check yet).

    Returns None when acceptable, else an AADSTS error description fragment.
    """
    if claims.get("iss") != sim.client_id or claims.get("sub") != sim.client_id:
        return "AADSTS700021: Client assertion application identifier doesn't match 'client_id' parameter."
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and exp < time.time() - 300:
        return "AADSTS700024: Client assertion is not within its valid time range."
    return None


class _Token:
    __slots__ = ("expires", "revoked", "tenant_id")

    def __init__(self, expires: float, tenant_id: str = "") -> None:
        self.expires = expires
        self.revoked = False
        self.tenant_id = tenant_id  # a customer tenant's id, or "" for the home tenant


class _GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class _EntraError(Exception):
    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.error = error
        self.code = code
        self.text = text


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, sim: GraphSimulator) -> None:
        self.sim = sim
        self.connections: Set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", sim.port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response (a killed input, a reset test) is expected, not news.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class GraphSimulator:
    """Entra ID + Microsoft Graph security on a loopback port, backed by a SyntheticTenant."""

    def __init__(
        self,
        tenant: Optional[SyntheticTenant] = None,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: Optional[str] = None,
        max_lifetime: float = 900.0,
        tenant_id: Optional[str] = None,
        roles: Iterable[str] = DEFAULT_ROLES,
        port: int = 0,
        token_lifetime: float = 3599.0,
        tenant_aliases: Iterable[str] = ("contoso.onmicrosoft.com", "contoso.com"),
    ) -> None:
        self.tenant = tenant if tenant is not None else SyntheticTenant.generate()
        self.server_page_cap: Optional[int] = None  # serve at most this many items a page, whatever $top says
        self.tenant_id = tenant_id or self.tenant.tenant_id or DEFAULT_TENANT_ID
        self.client_id = client_id
        self.client_secret = client_secret or (
            "sim-secret-" + hashlib.sha256(f"{self.tenant_id}:{client_id}".encode()).hexdigest()[:32]
        )
        self.max_lifetime = max_lifetime
        self.port = port
        self.token_lifetime = token_lifetime
        self.tenant_aliases = set(tenant_aliases)
        self.app_roles: Set[str] = set(roles)
        # Customer tenants a multi-tenant app registration may reach with the same credential: tenant id ->
        # the application roles consented there, or None when the app was never consented there (no service
        # principal: Entra refuses the token with AADSTS7000229, as its error-code reference says).
        self.customer_tenants: Dict[str, Optional[Set[str]]] = {}
        # A customer tenant's own alerts and incidents (tenant id -> data); one without is served the home data.
        self.customer_data: Dict[str, SyntheticTenant] = {}
        self.assertion_verifier: AssertionVerifier = default_assertion_verifier
        self.faults = FaultPlan()
        self.hunting = HuntingSettings()  # runHuntingQuery's caps, quota, timeout and boolean form
        # runHuntingQuery's tables, one set per tenant ("" the home tenant): each its own rows and CPU quota.
        self._hunting_tables: Dict[str, HuntingTables] = {}
        self.requests: List[RequestRecord] = []
        self._forgotten_before = 0.0  # requests that arrived before this (time.time()) are not recorded
        self.writes: List[Dict[str, Any]] = []  # accepted PATCH / comment bodies (writes.py)
        self._clock: int = self.tenant.anchor_ticks
        self._tokens: Dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._index = 0
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None
        self._stopped = threading.Event()
        self.base_url = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> GraphSimulator:
        if self._server is not None:
            return self
        self._server = _Server(self)
        port = self._server.server_address[1]
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._stopped.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="graph-sim", daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._server = None
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        server.shutdown()
        server.server_close()
        with server.conn_lock:
            conns = list(server.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._stopped.set()

    @property
    def running(self) -> bool:
        return self._server is not None

    def wait_stopped(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)

    def __enter__(self) -> GraphSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls
    def set_clock(self, when: Any) -> None:
        """Show the tenant as it was at `when` (datetime, ISO text or ticks)."""
        self._clock = parse_any(when)

    @property
    def clock(self) -> datetime:
        from .timeutil import ticks_to_dt

        return ticks_to_dt(self._clock)

    @property
    def clock_text(self) -> str:
        return format_ticks(self._clock)

    def expire_tokens(self) -> None:
        with self._lock:
            for token in self._tokens.values():
                token.revoked = True

    @property
    def issued_tokens(self) -> List[str]:
        """Every access token handed out so far (for tests that prove no token is ever logged)."""
        with self._lock:
            return list(self._tokens)

    def set_roles(self, *roles: str) -> None:
        """Application roles granted to the app (evaluated on every Graph call)."""
        self.app_roles = set(roles)

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def scope(self) -> str:
        return "https://graph.microsoft.com/.default"

    def add_customer_tenant(
        self, tenant_id: str, *roles: str, consented: bool = True, data: Optional[SyntheticTenant] = None
    ) -> None:
        """A tenant where the app is consented with ``roles`` (or not consented at all), serving ``data``
        (its own SyntheticTenant, shown at the simulator's clock) or, without it, the home tenant's."""
        self.customer_tenants[tenant_id.lower()] = set(roles) if consented else None
        if data is not None:
            self.customer_data[tenant_id.lower()] = data

    def tenant_of(self, authorization: Optional[str]) -> Optional[str]:
        """The tenant a request's bearer token was issued for (a fault predicate's way to single out one
        customer tenant: ``predicate=lambda ctx: sim.tenant_of(ctx.headers.get("authorization")) == t``)."""
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None:
            return None
        return entry.tenant_id or self.tenant_id

    def issue_token(self, customer_tenant: str = "") -> str:
        """A valid token without going through the endpoint (for tests of Graph behaviour)."""
        now = time.time()
        roles = self.customer_tenants.get(customer_tenant) if customer_tenant else self.app_roles
        header = {"typ": "JWT", "alg": "RS256", "kid": "sim"}
        claims = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(now + self.token_lifetime),
            "appid": self.client_id,
            "roles": sorted(roles or ()),
            "tid": customer_tenant or self.tenant_id,
            "uti": secrets.token_urlsafe(16),
        }

        def enc(obj: Dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        token = f"{enc(header)}.{enc(claims)}.{secrets.token_urlsafe(64)}"
        with self._lock:
            self._tokens[token] = _Token(now + self.token_lifetime, customer_tenant)
        return token

    def graph_requests(self, resource: Optional[str] = None) -> List[RequestRecord]:
        return [
            r
            for r in self.requests
            if r.resource in ("alerts_v2", "incidents") and (resource is None or r.resource == resource)
        ]

    def hunting_requests(self) -> List[RequestRecord]:
        """runHuntingQuery calls; each record's ``query`` holds the body's Query and Timespan."""
        return [r for r in self.requests if r.resource == "runHuntingQuery"]

    def data_of(self, customer: str = "") -> SyntheticTenant:
        """The alerts and incidents a token of ``customer`` ("" for the home tenant) reads, hunts and writes:
        the customer tenant's own data, or the home tenant's when it was given none. Graph picks the tenant
        from the token's ``tid`` alone (no request names another tenant), so a token of tenant A never sees
        or changes tenant B's own data."""
        return self.customer_data.get(customer, self.tenant) if customer else self.tenant

    @property
    def hunting_tables(self) -> HuntingTables:
        """The home tenant's hunting tables (``hunting_tables_of`` for a customer tenant's)."""
        return self.hunting_tables_of("")

    def hunting_tables_of(self, customer: str) -> HuntingTables:
        """A tenant's hunting tables, built from ``data_of(customer)``: its AlertInfo rows carry its alert ids,
        and its CPU quota is counted apart from every other tenant's (Graph's quota is per tenant)."""
        data = self.data_of(customer)
        with self._lock:
            tables = self._hunting_tables.get(customer)
            if tables is None or tables.tenant is not data:
                tables = self._hunting_tables[customer] = HuntingTables(data, self.hunting)
        tables.settings = self.hunting
        return tables

    @property
    def hunting_rows_served(self) -> int:
        """Rows in successful runHuntingQuery answers, every tenant's (for benchmarks)."""
        with self._lock:
            return sum(t.rows_served for t in self._hunting_tables.values())

    def handle_hunting(self, raw_body: bytes, customer: str = "") -> bytes:
        try:
            body = json.loads(raw_body.decode("utf-8")) if raw_body else None
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise _GraphError(400, "BadRequest", "The request body is not a valid JSON object.")
        try:
            return self.hunting_tables_of(customer).run(body, self._clock, self.base_url)
        except HuntingFault as fault:
            raise _GraphError(fault.status, fault.code, fault.message, fault.headers) from None

    def _next_index(self) -> int:
        with self._lock:
            index = self._index
            self._index += 1
            return index

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            if rec.time >= self._forgotten_before:
                self.requests.append(rec)

    def forget_requests(self) -> None:
        """Empty ``requests`` for what comes next. A request that arrived before, still being answered
        (a ``delay`` fault outlives the client's timeout), is not recorded when it ends: it would be
        counted as the next test's."""
        with self._lock:
            self.requests.clear()
            self._forgotten_before = time.time()

    # ------------------------------------------------------------------ token endpoint
    def handle_token(self, tenant: str, form: Dict[str, str], basic: Optional[Tuple[str, str]]) -> bytes:
        customer = tenant.lower() if tenant.lower() in self.customer_tenants else ""
        if not customer and tenant not in (self.tenant_id, *self.tenant_aliases):
            raise _EntraError(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud. Check with your subscription administrator, this may "
                "happen if there are no active subscriptions for the tenant.",
            )
        grant = form.get("grant_type")
        if not grant:
            raise _EntraError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'."
            )
        if grant != "client_credentials":
            raise _EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
            )
        client_id = form.get("client_id") or (basic[0] if basic else "")
        if not client_id:
            raise _EntraError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
            )
        scope = form.get("scope")
        if not scope:
            raise _EntraError(
                400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."
            )
        if client_id != self.client_id:
            raise _EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_id}'. "
                "This can happen if the application has not been installed by the administrator of the tenant "
                "or consented to by any user in the tenant. You may have sent your authentication request to "
                "the wrong tenant.",
            )
        if customer and self.customer_tenants[customer] is None:
            raise _EntraError(
                400,
                "invalid_client",
                7000229,
                f"The client application {client_id} is missing service principal in the tenant {customer}. See "
                "instructions here: https://go.microsoft.com/fwlink/?linkid=2225119",
            )
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        secret = form.get("client_secret") or (basic[1] if basic else None)
        assertion = form.get("client_assertion")
        if assertion is not None or form.get("client_assertion_type"):
            self._check_assertion(form.get("client_assertion_type"), assertion)
        elif secret is None:
            raise _EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        elif not secrets.compare_digest(secret.encode(), self.client_secret.encode()):
            raise _EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{self.client_id}'.",
            )
        token = self.issue_token(customer)
        return json.dumps(
            {
                "token_type": "Bearer",
                "expires_in": int(self.token_lifetime),
                "ext_expires_in": int(self.token_lifetime),
                "access_token": token,
            }
        ).encode()

    def _check_assertion(self, assertion_type: Optional[str], assertion: Optional[str]) -> None:
        if assertion_type != JWT_BEARER:
            raise _EntraError(
                400,
                "invalid_request",
                50027 if assertion_type is None else 700025,
                "The request body must contain the following parameter: 'client_assertion_type'."
                if assertion_type is None
                else f"Client assertion type '{assertion_type}' is not supported.",
            )
        if not assertion:
            raise _EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_assertion'.",
            )
        parts = assertion.split(".")
        try:
            if len(parts) != 3 or not all(parts):
                raise ValueError("not three parts")
            header, claims = _b64url_json(parts[0]), _b64url_json(parts[1])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from None
        problem = self.assertion_verifier(assertion, header, claims, self)
        if problem:
            match = re.match(r"AADSTS(\d+): (.*)", problem)
            code, text = (int(match.group(1)), match.group(2)) if match else (700027, problem)
            raise _EntraError(401, "invalid_client", code, text)

    @staticmethod
    def entra_error_body(err: _EntraError) -> bytes:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        return json.dumps(
            {
                "error": err.error,
                "error_description": f"AADSTS{err.code}: {err.text} Trace ID: {trace} Correlation ID: {corr} "
                f"Timestamp: {now}",
                "error_codes": [err.code],
                "timestamp": now,
                "trace_id": trace,
                "correlation_id": corr,
                "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
            }
        ).encode()

    # ------------------------------------------------------------------ Graph
    def check_token(self, authorization: Optional[str]) -> str:
        """The token's customer tenant ("" for the home tenant); 401 when it is not a valid token."""
        if not authorization:
            raise _GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None or entry.revoked or entry.expires < time.time():
            raise _GraphError(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        return entry.tenant_id

    def check_roles(self, resource: str, customer_tenant: str = "") -> None:
        required = REQUIRED_ROLES[resource]
        roles = (self.customer_tenants.get(customer_tenant) or set()) if customer_tenant else self.app_roles
        if not roles.intersection(required):
            granted = ", ".join(sorted(roles)) or "none"
            raise _GraphError(
                403,
                "Forbidden",
                f"Missing application roles. API required roles: {', '.join(required)}. API granted roles: {granted}.",
            )

    def effective_options(self, query: Dict[str, str]) -> Dict[str, str]:
        """Query options with a $skiptoken's state merged in (raises _GraphError on misuse)."""
        unknown = [k for k in query if k.startswith("$") and k not in SUPPORTED_OPTIONS]
        if unknown:
            raise _GraphError(400, "BadRequest", f"Query option '{unknown[0]}' is not supported.")
        if "$skiptoken" not in query:
            return dict(query)
        extra = [k for k in query if k.startswith("$") and k != "$skiptoken"]
        if extra:
            raise _GraphError(
                400,
                "BadRequest",
                f"Query option '{extra[0]}' cannot be combined with '$skiptoken'; use the nextLink as is.",
            )
        try:
            state = _b64url_json(query["$skiptoken"])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise _GraphError(400, "BadRequest", "The skip token is not valid.") from None
        opts = {k: v for k, v in query.items() if not k.startswith("$")}
        opts.update({k: str(v) for k, v in state.items() if k.startswith("$")})
        return opts

    def handle_graph(
        self, resource: str, item_id: Optional[str], opts: Dict[str, str], include_unknown: bool, customer: str = ""
    ) -> bytes:
        data = self.data_of(customer)
        coll: Collection = data.alerts if resource == "alerts_v2" else data.incidents
        clock = self._clock
        context = f"{self.base_url}/v1.0/$metadata#security/{resource}"
        expand = opts.get("$expand")
        if expand is not None and (resource != "incidents" or expand != "alerts"):
            raise _GraphError(
                400,
                "BadRequest",
                f"Parsing OData Select and Expand failed: Could not find a property named '{expand}' on type "
                f"'microsoft.graph.security.{'alert' if resource == 'alerts_v2' else 'incident'}'.",
            )
        if expand:
            context = f"{self.base_url}/v1.0/$metadata#security/{resource}(alerts())"
        if item_id is not None:
            found = coll.latest(item_id, clock)
            if found is None:
                raise _GraphError(404, "NotFound", f"No {resource[:-1]} found with id '{item_id}'.")
            body = self._item_body(found, bool(expand), include_unknown, clock, data)
            return b'{"@odata.context":"' + context.encode() + b'/$entity",' + body[1:]
        lo, hi = self._parse_filter(opts.get("$filter"))
        desc = self._parse_orderby(opts.get("$orderby"))
        default_top, max_top = TOP_LIMITS[resource]
        top = self._parse_int(opts, "$top", default_top)
        if top > max_top:
            raise _GraphError(
                400,
                "BadRequest",
                f"The limit of '{max_top}' for Top query has been exceeded. The value from the incoming "
                f"request is '{top}'.",
            )
        skip = self._parse_int(opts, "$skip", 0)
        count = opts.get("$count", "false").lower()
        if count not in ("true", "false"):
            raise _GraphError(400, "BadRequest", f"'{opts['$count']}' is not a valid count option.")
        if self.server_page_cap is not None:
            # Server-driven paging: Graph may return fewer items than $top, with a nextLink.
            top = min(top, self.server_page_cap)
        # One item past the page tells whether a nextLink is due; $count needs them all.
        limit = None if count == "true" else skip + top + 1
        visible = coll.visible(clock, lo, hi, desc, limit=limit)
        page = visible[skip : skip + top]
        parts = [b'{"@odata.context":"', context.encode(), b'"']
        if count == "true":
            parts.append(b',"@odata.count":%d' % len(visible))
        parts.append(b',"value":[')
        parts.append(b",".join(self._item_body(v, bool(expand), include_unknown, clock, data) for v in page))
        parts.append(b"]")
        if skip + top < len(visible) and top > 0:
            state = {k: v for k, v in opts.items() if k in ("$filter", "$orderby", "$expand", "$count")}
            state["$top"] = str(top)
            state["$skip"] = str(skip + top)
            token = base64.urlsafe_b64encode(json.dumps(state, sort_keys=True).encode()).rstrip(b"=").decode()
            link = f"{self.base_url}/v1.0/security/{resource}?$skiptoken={token}"
            parts.append(b',"@odata.nextLink":' + json.dumps(link).encode())
        parts.append(b"}")
        return b"".join(parts)

    def _item_body(
        self, v: ItemVersion, expand: bool, include_unknown: bool, clock: int, data: SyntheticTenant
    ) -> bytes:
        body = v.body(include_unknown)
        if not expand:
            return body
        alerts = data.alerts.by_incident(clock).get(v.item_id, [])
        inner = b",".join(a.body(include_unknown) for a in alerts)
        return body[:-1] + b',"alerts":[' + inner + b"]}"

    @staticmethod
    def _parse_int(opts: Mapping[str, str], name: str, default: int) -> int:
        text = opts.get(name)
        if text is None:
            return default
        if not re.fullmatch(r"\d+", text.strip()):
            raise _GraphError(
                400,
                "BadRequest",
                f"Invalid value '{text}' for {name} query option found. It must be a non-negative integer.",
            )
        return int(text)

    @staticmethod
    def _parse_filter(text: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
        if text is None or not text.strip():
            return None, None
        lo: Optional[int] = None
        hi: Optional[int] = None
        for clause in re.split(r"\s+and\s+", text.strip()):
            m = _CLAUSE.match(clause.strip())
            if m is None:
                raise _GraphError(400, "BadRequest", f"Invalid filter clause: {clause.strip()}")
            op, literal = m.group(1), m.group(2)
            if literal.startswith("'"):
                raise _GraphError(
                    400,
                    "BadRequest",
                    "Invalid filter clause: A binary operator with incompatible types was detected. Found operand "
                    f"types 'Edm.DateTimeOffset' and 'Edm.String' for operator kind '{op}'.",
                )
            ticks = parse_literal(literal)
            if ticks is None:
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Invalid filter clause: The DateTimeOffset text '{literal}' should be in format "
                    "'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?' and each field value is within valid range.",
                )
            if op == "gt":
                op, ticks = "ge", ticks + 1
            elif op == "lt":
                op, ticks = "le", ticks - 1
            if op == "ge":
                lo = ticks if lo is None else max(lo, ticks)
            else:
                hi = ticks if hi is None else min(hi, ticks)
        return lo, hi

    @staticmethod
    def _parse_orderby(text: Optional[str]) -> bool:
        """True for descending (Graph's default: most recent first)."""
        if text is None:
            return True
        m = re.fullmatch(r"\s*lastUpdateDateTime(?:\s+(asc|desc))?\s*", text)
        if m is None:
            raise _GraphError(400, "BadRequest", f"The $orderby expression '{text}' is not supported.")
        return m.group(1) == "desc"

    @staticmethod
    def graph_error_body(status: int, code: str, message: str, client_request_id: Optional[str]) -> bytes:
        return json.dumps(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "innerError": {
                        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": str(uuid.uuid4()),
                        "client-request-id": client_request_id or str(uuid.uuid4()),
                    },
                }
            }
        ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.conn_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ------------------------------------------------------------------
    def _dispatch(self) -> None:
        sim = self.server.sim
        arrived = time.time()
        index = sim._next_index()
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        query = {
            (f"${k}" if k in ("filter", "top", "skip", "orderby", "expand", "count") else k): v
            for k, v in query.items()
        }
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {k: v for k, v in self.headers.items()}
        lower_headers = {k.lower(): v for k, v in headers.items()}
        record_headers = {k: ("Bearer REDACTED" if k.lower() == "authorization" else v) for k, v in headers.items()}
        token_match = _TOKEN_PATH.match(path)
        coll_match = _COLLECTION_PATH.match(path) or COMMENTS_PATH.match(path)
        self._raw_body = raw_body  # for the write side (writes.py)
        hunting_match = _HUNTING_PATH.match(path)
        resource = (
            "token"
            if token_match
            else coll_match.group(1)
            if coll_match
            else "runHuntingQuery"
            if hunting_match
            else "other"
        )
        if hunting_match and raw_body:
            try:
                hunting_body = json.loads(raw_body.decode("utf-8"))
                if isinstance(hunting_body, dict):
                    query = {k: str(v) for k, v in hunting_body.items() if k in ("Query", "Timespan")}
            except (UnicodeDecodeError, ValueError):
                pass
        form: Optional[Dict[str, str]] = None
        if token_match:
            form = dict(parse_qsl(raw_body.decode("utf-8", "replace"), keep_blank_values=True))
        rec = RequestRecord(
            self.command,
            path,
            query,
            record_headers,
            0,
            arrived,
            form={k: ("REDACTED" if k in ("client_secret", "client_assertion") else v) for k, v in form.items()}
            if form is not None
            else None,
            resource=resource,
            index=index,
        )
        client_request_id = lower_headers.get("client-request-id")
        self._pending: Optional[RequestRecord] = rec
        try:
            opts: Dict[str, str] = query
            graph_error: Optional[_GraphError] = None
            if coll_match:
                try:
                    opts = sim.effective_options(query)
                except _GraphError as err:
                    graph_error = err
            rule = sim.faults.match(FaultContext(index, self.command, path, resource, opts, lower_headers))
            if rule is not None:
                rec.fault = rule.kind
                if rule.delay:
                    time.sleep(rule.delay)
                if rule.kind == "reset":
                    self._flush_record()
                    self._reset()
                    return
                if rule.kind == "status":
                    self._send_fault(rule, resource, client_request_id, rec)
                    return
                if rule.kind == "expire_tokens":
                    sim.expire_tokens()
                if rule.kind == "call" and rule.action is not None:
                    rule.action(sim, FaultContext(index, self.command, path, resource, opts, lower_headers))
            if hunting_match:
                status, body, ctype, extra = self._handle_hunting(sim, raw_body, lower_headers, client_request_id)
            else:
                status, body, ctype, extra = self._handle(
                    sim, resource, token_match, coll_match, form, opts, graph_error, lower_headers, client_request_id
                )
            if rule is not None and rule.kind == "foreign_link" and rule.link_base:
                body = body.replace(
                    b'"@odata.nextLink":"' + sim.base_url.encode(),
                    b'"@odata.nextLink":"' + rule.link_base.rstrip("/").encode(),
                )
            if rule is not None and rule.kind == "bad_rows" and hunting_match and status == 200:
                body = with_bad_rows(body, rule)
            if rule is not None and rule.kind in TRANSPORT_KINDS:
                self._send_transport_fault(rule, rec, status, body, ctype, extra)
                return
            if rule is not None and rule.kind in ("malformed_json", "truncate"):
                cut = body[: max(1, len(body) // 2)]
                if rule.kind == "truncate":
                    rec.status = status
                    self._send(status, body, ctype, extra, send_body=cut)
                    self.close_connection = True
                    return
                body = cut
            rec.status = status
            self._send(status, body, ctype, extra)
        except (ConnectionError, BrokenPipeError, socket.timeout):
            self.close_connection = True
        finally:
            self._flush_record()

    def _flush_record(self) -> None:
        """Record the request once, before its response is written (tests read it right after)."""
        rec, self._pending = self._pending, None
        if rec is not None:
            self.server.sim._record(rec)

    def _handle(
        self,
        sim: GraphSimulator,
        resource: str,
        token_match: Optional[re.Match[str]],
        coll_match: Optional[re.Match[str]],
        form: Optional[Dict[str, str]],
        opts: Dict[str, str],
        graph_error: Optional[_GraphError],
        headers: Dict[str, str],
        client_request_id: Optional[str],
    ) -> Tuple[int, bytes, str, Dict[str, str]]:
        extra: Dict[str, str] = {"request-id": str(uuid.uuid4())}
        if client_request_id:
            extra["client-request-id"] = client_request_id
        if token_match:
            if self.command != "POST":
                err = _EntraError(405, "invalid_request", 900561, "The endpoint only accepts POST requests.")
                return err.status, sim.entra_error_body(err), JSON_ENTRA, {}
            assert form is not None
            try:
                body = sim.handle_token(token_match.group(1), form, self._basic_auth(headers))
                return 200, body, JSON_ENTRA, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
            except _EntraError as err:
                return err.status, sim.entra_error_body(err), JSON_ENTRA, {}
        try:
            if coll_match is None:
                segment = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1] or "/"
                raise _GraphError(404, "ResourceNotFound", f"Resource not found for the segment '{segment}'.")
            if self.command != "GET" or COMMENTS_PATH.match(coll_match.string):
                if not is_write(self.command, coll_match.string):
                    raise _GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request uri.")
                customer = sim.check_token(headers.get("authorization"))
                try:
                    body = handle_write(
                        sim, self.command, resource, coll_match.group(2), coll_match.string, self._raw_body, customer
                    )
                except WriteRefused as refused:
                    raise _GraphError(refused.status, refused.code, refused.message) from None
                extra["OData-Version"] = "4.0"
                return 200, body, JSON_GRAPH, extra
            customer = sim.check_token(headers.get("authorization"))
            sim.check_roles(resource, customer)
            if graph_error is not None:
                raise graph_error
            prefer = ",".join(self.headers.get_all("Prefer") or [])
            include_unknown = PREFER_UNKNOWN in [p.strip().lower() for p in prefer.split(",")]
            body = sim.handle_graph(resource, coll_match.group(2), opts, include_unknown, customer)
            if include_unknown:
                extra["Preference-Applied"] = PREFER_UNKNOWN
            extra["OData-Version"] = "4.0"
            return 200, body, JSON_GRAPH, extra
        except _GraphError as err:
            extra.update(err.headers)
            if err.status == 401:
                extra["WWW-Authenticate"] = (
                    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"'
                )
            return (
                err.status,
                sim.graph_error_body(err.status, err.code, err.message, client_request_id),
                JSON_GRAPH,
                extra,
            )

    def _handle_hunting(
        self, sim: GraphSimulator, raw_body: bytes, headers: Dict[str, str], client_request_id: Optional[str]
    ) -> Tuple[int, bytes, str, Dict[str, str]]:
        extra: Dict[str, str] = {"request-id": str(uuid.uuid4())}
        try:
            if self.command != "POST":
                raise _GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request uri.")
            customer = sim.check_token(headers.get("authorization"))
            sim.check_roles("runHuntingQuery", customer)
            body = sim.handle_hunting(raw_body, customer)
            extra["OData-Version"] = "4.0"
            return 200, body, JSON_GRAPH, extra
        except _GraphError as err:
            extra.update(err.headers)
            return (
                err.status,
                sim.graph_error_body(err.status, err.code, err.message, client_request_id),
                JSON_GRAPH,
                extra,
            )

    @staticmethod
    def _basic_auth(headers: Dict[str, str]) -> Optional[Tuple[str, str]]:
        value = headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        try:
            decoded = base64.b64decode(value[6:].strip()).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        from urllib.parse import unquote_plus

        user, _, password = decoded.partition(":")
        return unquote_plus(user), unquote_plus(password)

    def _send_fault(self, rule: FaultRule, resource: str, client_request_id: Optional[str], rec: RequestRecord) -> None:
        sim = self.server.sim
        status = rule.status or 500
        extra: Dict[str, str] = {"request-id": str(uuid.uuid4())}
        if rule.retry_after is not None:
            extra["Retry-After"] = rule.retry_after
        extra.update(rule.headers)
        if isinstance(rule.body, bytes):
            body, ctype = rule.body, JSON_GRAPH
        elif isinstance(rule.body, dict):
            body, ctype = json.dumps(rule.body).encode(), JSON_GRAPH
        elif resource == "token":
            err = _EntraError(
                status,
                rule.code or ("temporarily_unavailable" if status >= 429 else "invalid_request"),
                rule.status or 500,
                rule.message or "The service is temporarily unavailable. Retry the request later.",
            )
            body, ctype = sim.entra_error_body(err), JSON_ENTRA
        else:
            code = rule.code or GRAPH_CODES.get(status, "UnknownError")
            message = rule.message or {
                429: "Too many requests.",
                503: "The service is currently unavailable. Please try again later.",
            }.get(status, "An unexpected error occurred.")
            body, ctype = sim.graph_error_body(status, code, message, client_request_id), JSON_GRAPH
        rec.status = status
        self._send(status, body, ctype, extra)

    # ------------------------------------------------------------------ transport faults
    def _send_transport_fault(
        self, rule: FaultRule, rec: RequestRecord, status: int, body: bytes, ctype: str, extra: Dict[str, str]
    ) -> None:
        """The transport kinds (faults.py): the normal answer, sent or bent the way the rule says."""
        sim = self.server.sim
        if rule.kind == "self_link" and status == 200:
            body = with_next_link(body, sim.base_url + self.path)
        elif rule.kind == "token_expires" and status == 200 and rec.resource == "token":
            body = with_expires_in(body, rule.expires_in)
        elif rule.kind == "html":
            status, body, ctype = 200, HTML_PAGE, "text/html; charset=utf-8"
        elif rule.kind == "gzip_bomb":
            status, body = 200, gzip_bomb(rule.bomb_bytes)
            extra = {**extra, "Content-Encoding": "gzip"}
        rec.status = status
        if rule.kind not in ("trickle", "trickle_head"):
            self._send(status, body, ctype, extra)
            return
        self.close_connection = True
        if rule.kind == "trickle":
            self._send(status, body, ctype, extra, send_body=b"")  # headers at once, with the true Content-Length
            slow = body
        else:  # status line and headers trickled too: the client has no response object to give up on
            real, captured = self.wfile, io.BytesIO()
            self.wfile = captured
            try:
                self._send(status, body, ctype, extra)
            finally:
                self.wfile = real
            slow = captured.getvalue()
        # Small pieces at short pauses (20 a second at most): each read of the client sees bytes soon.
        step = max(1, round(rule.trickle_rate / 20))
        pause = step / rule.trickle_rate
        for at in range(0, len(slow), step):
            if not sim.running:
                return
            time.sleep(pause)
            try:
                self.wfile.write(slow[at : at + step])
                self.wfile.flush()
            except OSError:  # the client hung up: what a bounded client does
                return

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str,
        extra: Dict[str, str],
        send_body: Optional[bytes] = None,
    ) -> None:
        lines = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
        ]
        lines.extend(f"{k}: {v}" for k, v in extra.items())
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._flush_record()
        self.wfile.write(head + (body if send_body is None else send_body))
