"""The splunkd stand-in: a loopback plain-HTTP server speaking the splunkd REST API subset that
solnlib and splunklib use (conf files, storage/passwords, KV store), backed by SQLite."""

from __future__ import annotations

import json
import pathlib
import secrets
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Type
from urllib.parse import parse_qs, unquote, urlsplit

from ..standin_http import Reply, StandinHandler
from .api import Api, Request, Response, error
from .eai import render_error
from .store import AlreadyExists, Store, password_entity_name

# solnlib.credentials.CredentialManager's chunking of a clear password into storage/passwords
CRED_SEP = "``splunk_cred_sep``"
CRED_END_MARK = (
    "``splunk_cred_sep``S``splunk_cred_sep``P``splunk_cred_sep``L``splunk_cred_sep``"
    "U``splunk_cred_sep``N``splunk_cred_sep``K``splunk_cred_sep``"
)
CRED_CHUNK = 255
# splunktaucclib.rest_handler.credentials.RestCredentials.PASSWORD (== solnlib ConfFile.ENCRYPTED_TOKEN)
UCC_PLACEHOLDER = "******"


def parse_conf_file(path: pathlib.Path) -> Dict[str, Dict[str, str]]:
    """A Splunk .conf file: ``[stanza]`` headers, ``key = value`` lines, ``#`` comments,
    backslash line continuation; keys before the first header land in ``default``."""
    stanzas: Dict[str, Dict[str, str]] = {"default": {}}
    current = "default"
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + "\n" + lines[i]
            i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1]
            stanzas.setdefault(current, {})
        elif "=" in stripped:
            key, value = stripped.split("=", 1)
            stanzas[current][key.strip()] = value.strip()
    return stanzas


class Call(NamedTuple):
    method: str
    path: str  # percent-decoded path, without the query string
    query: Dict[str, List[str]]  # URL query only (POST bodies, which carry secrets, are not kept)


class SplunkdStandin:
    """Loopback splunkd REST stand-in. Use as a context manager; stops by itself after
    ``max_lifetime`` seconds. State lives in ``state_dir/splunkd_standin.sqlite3``."""

    def __init__(
        self,
        state_dir: pathlib.Path,
        app: str = "TA-defender-lineage",
        max_lifetime: float = 900.0,
        session_key: Optional[str] = None,
    ) -> None:
        self.state_dir = pathlib.Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.app = app
        self.max_lifetime = max_lifetime
        self.session_key = session_key or secrets.token_urlsafe(32)
        self.restroot = app.lower().replace("-", "_")
        self._store = Store(self.state_dir / "splunkd_standin.sqlite3")
        self._api = Api(self._store, self._system_confs)
        self._calls: List[Call] = []
        self._unknown: List[Call] = []
        self._errors: List[str] = []
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None
        self._stopped = threading.Event()

    def __repr__(self) -> str:  # never show the session key
        return f"SplunkdStandin(uri={self.uri if self._server else None!r}, app={self.app!r})"

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> SplunkdStandin:
        if self._server is not None:
            return self
        handler = _make_handler(self)
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="splunkd-standin", daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def close(self) -> None:
        """Stop serving, or, for a stand-in only used to set up state for another process, release the file."""
        if self._server is None:
            self._store.close()
        else:
            self.stop()

    def stop(self) -> None:
        with self._lock:
            if self._stopped.is_set() or self._server is None:
                return
            self._stopped.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        self._server.shutdown()
        self._server.server_close()
        self._store.close()

    def __enter__(self) -> SplunkdStandin:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    def wait_stopped(self, timeout: Optional[float] = None) -> bool:
        return self._stopped.wait(timeout)

    @property
    def running(self) -> bool:
        return self._server is not None and not self._stopped.is_set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return int(self._server.server_address[1])

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- what happened ----------------------------------------------------------------------

    @property
    def calls(self) -> List[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def unknown_calls(self) -> List[Call]:
        with self._lock:
            return list(self._unknown)

    @property
    def errors(self) -> List[str]:
        """Tracebacks of requests that crashed the stand-in (answered 500); should stay empty."""
        with self._lock:
            return list(self._errors)

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()
            self._unknown.clear()

    # ---- state set-up -----------------------------------------------------------------------

    def set_kvstore_available(self, available: bool) -> None:
        """False: every storage/collections request answers 503 like a KV store that is starting."""
        self._api.kvstore_available = available

    def load_app_defaults(self, app_dir: pathlib.Path) -> None:
        """Load ``<app_dir>/default/*.conf`` as splunkd would see the installed app: every stanza
        into the conf layer, and each ``collections.conf`` stanza as an existing KV collection.
        Values set later (``set_conf``, ``add_ucc_account``...) override key by key, like local/."""
        for path in sorted((pathlib.Path(app_dir) / "default").glob("*.conf")):
            conf_name = path.stem
            self._store.conf_create_file(self.app, conf_name)
            for stanza, fields in parse_conf_file(path).items():
                if stanza == "default" and not fields:
                    continue
                if conf_name == "collections":
                    try:
                        self._store.kv_collection_create(self.app, stanza, fields)
                    except AlreadyExists:
                        pass
                self._store.conf_set(self.app, conf_name, stanza, fields)

    def set_conf(self, conf_name: str, stanza: str, fields: Dict[str, str], app: Optional[str] = None) -> None:
        self._store.conf_set(app or self.app, conf_name, stanza, dict(fields))

    def conf_stanza(self, conf_name: str, stanza: str, app: Optional[str] = None) -> Optional[Dict[str, str]]:
        return self._store.conf_get(app or self.app, conf_name, stanza)

    def set_credential(self, realm: str, user: str, clear_password: str, app: Optional[str] = None) -> None:
        """Store a password the way ``solnlib.credentials.CredentialManager.set_password`` does:
        255-character chunks ``user``splunk_cred_sep``N`` plus an end-mark entry."""
        chunks = [clear_password[i : i + CRED_CHUNK] for i in range(0, len(clear_password), CRED_CHUNK)]
        chunks.append(CRED_END_MARK)
        for index, chunk in enumerate(chunks, start=1):
            username = f"{user}{CRED_SEP}{index}"
            try:
                self._store.pw_create(app or self.app, realm, username, chunk)
            except AlreadyExists:
                self._store.pw_update(password_entity_name(realm, username), chunk)

    def ucc_realm(self, conf_name: str) -> str:
        return f"__REST_CREDENTIAL__#{self.app}#configs/conf-{conf_name}"

    def _ucc_store(
        self, conf_name: str, stanza: str, fields: Dict[str, str], encrypted: Iterable[str], placeholder: str
    ) -> None:
        encrypted = list(encrypted)
        conf_fields = dict(fields)
        secret: Dict[str, str] = {}
        for name in encrypted:
            if conf_fields.get(name):  # UCC encrypts non-empty values only
                secret[name] = conf_fields[name]
                conf_fields[name] = placeholder
        self._store.conf_set(self.app, conf_name, stanza, conf_fields)
        if secret:
            self.set_credential(self.ucc_realm(conf_name), stanza, json.dumps(secret))

    def add_ucc_account(
        self, name: str, fields: Dict[str, str], encrypted: Iterable[str], placeholder: str = UCC_PLACEHOLDER
    ) -> None:
        """As UCC's REST handler stores an account: ``<restroot>_account.conf`` holds every field,
        encrypted non-empty ones replaced by ``******``; storage/passwords holds their clear values as
        a JSON object under realm ``__REST_CREDENTIAL__#<app>#configs/conf-<restroot>_account``."""
        self._ucc_store(f"{self.restroot}_account", name, fields, encrypted, placeholder)

    def set_ucc_settings(
        self,
        stanza: str,
        fields: Dict[str, str],
        encrypted: Iterable[str] = (),
        placeholder: str = UCC_PLACEHOLDER,
    ) -> None:
        """Same as :meth:`add_ucc_account` for ``<restroot>_settings.conf`` (``proxy``, ``logging``)."""
        self._ucc_store(f"{self.restroot}_settings", stanza, fields, encrypted, placeholder)

    def credentials(self, realm: Optional[str] = None) -> List[Dict[str, Any]]:
        """Raw storage/passwords entries (name, app, realm, username, clear_password)."""
        return [pw for pw in self._store.pw_list(None) if realm is None or pw["realm"] == realm]

    def kv_create_collection(self, collection: str, fields: Optional[Dict[str, str]] = None) -> None:
        try:
            self._store.kv_collection_create(self.app, collection, {f"field.{k}": v for k, v in (fields or {}).items()})
        except AlreadyExists:
            pass

    def kv_records(self, collection: str, app: Optional[str] = None) -> List[Dict[str, Any]]:
        """Documents of a KV store collection, in insertion order ([] if it does not exist)."""
        return self._store.kv_all(app or self.app, collection)

    def kv_save(self, collection: str, docs: Iterable[Dict[str, Any]]) -> None:
        """Seed documents (each with ``_key``); creates the collection when absent."""
        self.kv_create_collection(collection)
        self._store.kv_save(self.app, collection, [{**d, "_user": "nobody"} for d in docs])

    def kv_collections(self) -> List[str]:
        return [name for _, name, _ in self._store.kv_collections(None)]

    # ---- request handling (called from handler threads) --------------------------------------

    def _system_confs(self) -> Dict[str, Dict[str, Dict[str, str]]]:
        port = self.port if self._server is not None else 8089
        return {
            "server": {
                "general": {"serverName": "splunkd-standin", "pass4SymmKey": "********"},
                "sslConfig": {"enableSplunkdSSL": "false"},
            },
            "web": {"settings": {"mgmtHostPort": f"127.0.0.1:{port}", "enableSplunkWebSSL": "false"}},
        }

    def _authorized(self, header: Optional[str]) -> bool:
        if not header:
            return False
        scheme, _, token = header.strip().partition(" ")
        if scheme not in ("Splunk", "Bearer"):
            return False
        return secrets.compare_digest(token.strip().encode("utf-8"), self.session_key.encode("utf-8"))

    def _handle(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> Response:
        parts = urlsplit(target)
        raw_path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        call = Call(method, unquote(raw_path), query)
        with self._lock:
            self._calls.append(call)
        form: Dict[str, List[str]] = {}
        ctype = headers.get("content-type", "")
        if method == "POST" and body and "json" not in ctype:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        json_mode = (query.get("output_mode") or form.get("output_mode") or [""])[-1] == "json"

        if not self._authorized(headers.get("authorization")):
            body_out, ctype_out = render_error("call not properly authenticated", json_mode, "WARN")
            return Response(401, body_out, ctype_out)

        segments = [s for s in raw_path.split("/")]
        if segments and segments[0] == "":
            segments = segments[1:]
        while segments and segments[-1] == "":
            segments.pop()
        owner: Optional[str] = None
        app: Optional[str] = None
        if len(segments) >= 3 and segments[0] == "servicesNS":
            owner, app, rest = unquote(segments[1]), unquote(segments[2]), segments[3:]
        elif segments and segments[0] == "services":
            rest = segments[1:]
        else:
            rest = []
        req = Request(method, raw_path, owner, app, rest, query, form, body, self.uri)
        response = self._api.dispatch(req) if rest else None
        if response is None:
            with self._lock:
                self._unknown.append(call)
            return error(req, 404, f"Not Found: the splunkd stand-in does not implement {method} {unquote(raw_path)}")
        return response

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)


def _make_handler(standin: SplunkdStandin) -> Type[BaseHTTPRequestHandler]:
    class Handler(StandinHandler):
        server_version = "Splunkd"

        def answer(self, headers: Dict[str, str], body: bytes) -> Response:
            try:
                return standin._handle(self.command, self.path, headers, body)
            except Exception:
                standin._record_error(traceback.format_exc())
                body_out, ctype = render_error("Internal error in the splunkd stand-in", False)
                return Response(500, body_out, ctype)

        def answer_headers(self, headers: Dict[str, str], reply: Reply) -> List[Tuple[str, str]]:
            # echo the connection mode as splunkd does: splunklib's own handler reads the body
            # after closing its HTTPConnection, which only works when the answer says "close"
            closing = headers.get("connection", "").lower() == "close" or self.request_version != "HTTP/1.1"
            if closing:
                self.close_connection = True
            return [
                ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0"),
                ("Connection", "close" if closing else "Keep-Alive"),
            ]

    return Handler
