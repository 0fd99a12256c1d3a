"""The Splunk Web stand-in: serves the BUILT add-on's UCC pages to a real browser, with the add-on's
REST handlers running behind it as splunkd runs them.

- ``GET /<locale>/app/<app>/<view>``: the view's HTML template (``default/data/ui/views/<view>.xml``
  names ``<app>:/templates/base.html``) with two cookies, a web session and
  ``splunkweb_csrf_token_<port>`` (the form key the UI sends back as ``X-Splunk-Form-Key``).
- ``/<locale>/config``, ``static/@<build>/js/i18n.js``, ``i18ncatalog``,
  ``static/@<build>/build/api/layout.js`` (see :mod:`assets`), and the app's ``appserver/static``.
- ``/<locale>/splunkd/__raw/<splunkd path>``: what Splunk Web proxies to splunkd. Only endpoints a
  ``web.conf`` ``[expose:...]`` stanza exposes (the app's, plus the system ``search/jobs``) pass;
  a request without the web session, or a state-changing one without the right form key, is
  refused and recorded in ``csrf_failures``. ``restmap.conf`` ``admin_external`` endpoints run in
  the handler worker (:mod:`handlers`); the rest goes to the splunkd stand-in with the session key,
  which the browser never sees.

Anything else answers 404 and lands in ``unknown_calls``; tests assert both lists stay empty.
"""

from __future__ import annotations

import fnmatch
import json
import mimetypes
import pathlib
import re
import secrets
import shutil
import threading
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Dict, List, NamedTuple, Optional, Tuple, Type
from urllib.parse import parse_qs, unquote, urlsplit

from ..splunkd_standin import SplunkdStandin
from ..splunkd_standin.eai import Entry, default_acl, render_error, render_feed, search_matches
from ..splunkd_standin.server import parse_conf_file
from ..standin_http import Reply, StandinHandler
from . import assets
from .handlers import HandlerWorker, admin_external_handlers

BUILD_NUMBER = "1796651110"  # the number UCC's base.html hard-codes in its static URLs
LOCALE = "en-US"
# splunkd answers these itself (output format, paging, filtering); a handler never sees them
RESERVED_ARGS = {"output_mode", "count", "offset", "search", "sort_key", "sort_dir", "sort_mode", "f", "summarize"}
# system web.conf exposes far more; these are the ones a UCC page calls besides the app's own
SYSTEM_EXPOSED = [
    ("search/jobs", {"GET", "POST"}),
    ("search/jobs/*", {"GET", "POST", "DELETE"}),
    ("search/v2/jobs/*", {"GET", "POST"}),
]


class WebCall(NamedTuple):
    method: str
    path: str  # percent-decoded, without the query string


class HandlerCall(NamedTuple):
    endpoint: str
    action: str
    name: Optional[str]
    args: Tuple[str, ...]  # argument names only: their values may be secrets


class Answer(NamedTuple):
    status: int
    body: bytes
    content_type: str
    headers: Tuple[Tuple[str, str], ...] = ()


def _exposed_patterns(addon: pathlib.Path) -> List[Tuple[str, set]]:
    web = addon / "default" / "web.conf"
    stanzas = parse_conf_file(web) if web.exists() else {}
    patterns = [
        (fields["pattern"], {m.strip().upper() for m in fields.get("methods", "GET").split(",")})
        for name, fields in stanzas.items()
        if name.startswith("expose:") and "pattern" in fields
    ]
    return patterns + SYSTEM_EXPOSED


class SplunkWebStandin:
    """Loopback Splunk Web stand-in in front of ``splunkd``. Use as a context manager; stops by
    itself after ``max_lifetime`` seconds."""

    def __init__(
        self,
        addon: pathlib.Path,
        splunkd: SplunkdStandin,
        python: str,
        splunk_home: pathlib.Path,
        max_lifetime: float = 300.0,
    ) -> None:
        self.addon = pathlib.Path(addon)
        self.app = self.addon.name
        self.splunkd = splunkd
        self.python = python
        self.splunk_home = pathlib.Path(splunk_home)
        self.max_lifetime = max_lifetime
        self.csrf_token = secrets.token_hex(16)
        self.web_session = secrets.token_hex(16)
        self.handler_files = admin_external_handlers(self.addon)
        self.exposed = _exposed_patterns(self.addon)
        self._lock = threading.Lock()
        self._calls: List[WebCall] = []
        self._unknown: List[WebCall] = []
        self._csrf_failures: List[WebCall] = []
        self._handler_calls: List[HandlerCall] = []
        self._errors: List[str] = []
        self._jobs: Dict[str, List[Dict[str, str]]] = {}
        self._server: Optional[ThreadingHTTPServer] = None
        self._timer: Optional[threading.Timer] = None
        self._worker: Optional[HandlerWorker] = None
        self._stopped = threading.Event()

    def __repr__(self) -> str:
        return f"SplunkWebStandin(app={self.app!r})"

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> SplunkWebStandin:
        # Installed as splunkd sees it: solnlib and splunktaucclib find the app's name in the
        # handler's path ($SPLUNK_HOME/etc/apps/<app>/bin/...).
        installed = self.splunk_home / "etc" / "apps" / self.app
        if not installed.exists():
            shutil.copytree(self.addon, installed, ignore=shutil.ignore_patterns("__pycache__"))
        self.addon = installed
        self._worker = HandlerWorker(
            self.addon, self.python, self.splunk_home, self.splunkd.uri, self.splunkd.session_key
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        # a short poll: stop() waits for serve_forever to notice, and every UI test stops one
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="splunkweb-standin", daemon=True
        ).start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._worker is not None:
            self._worker.stop()

    def __enter__(self) -> SplunkWebStandin:
        return self.start()

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stand-in not started"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page_url(self, view: str, query: str = "") -> str:
        return f"{self.base_url}/{LOCALE}/app/{self.app}/{view}" + (f"?{query}" if query else "")

    # ---- what happened ----------------------------------------------------------------------

    def _snapshot(self, items: List[Any]) -> List[Any]:
        with self._lock:
            return list(items)

    @property
    def calls(self) -> List[WebCall]:
        return self._snapshot(self._calls)

    @property
    def unknown_calls(self) -> List[WebCall]:
        return self._snapshot(self._unknown)

    @property
    def csrf_failures(self) -> List[WebCall]:
        return self._snapshot(self._csrf_failures)

    @property
    def handler_calls(self) -> List[HandlerCall]:
        return self._snapshot(self._handler_calls)

    @property
    def errors(self) -> List[str]:
        """Crashes of the stand-in itself, and exceptions of the handlers that were not a
        RestError (a handler bug splunkd would report as a 500)."""
        with self._lock:
            found = list(self._errors)
        if self._worker is not None:
            found += [e["traceback"] for e in self._worker.errors if "RestError" not in e["type"] and not e["admin"]]
        return found

    # ---- request handling -------------------------------------------------------------------

    def _record(self, bucket: List[WebCall], call: WebCall) -> None:
        with self._lock:
            bucket.append(call)

    def _handle(self, method: str, target: str, headers: Dict[str, str], body: bytes) -> Answer:
        parts = urlsplit(target)
        path = unquote(parts.path)
        call = WebCall(method, path)
        self._record(self._calls, call)
        if path == "/favicon.ico" and method == "GET":  # browsers ask for it by themselves
            return Answer(204, b"", "image/x-icon")
        prefix = f"/{LOCALE}/"
        if path.startswith(prefix):
            rest = path[len(prefix) :]
            if rest.startswith("splunkd/__raw/"):
                return self._splunkd(call, parts.path[len(prefix) + len("splunkd/__raw") :], parts.query, headers, body)
            if method == "GET":
                answer = self._web_get(rest, parts.query)
                if answer is not None:
                    return answer
        self._record(self._unknown, call)
        return Answer(404, f"Not Found: the Splunk Web stand-in does not serve {method} {path}".encode(), "text/plain")

    # -- pages and static files

    def _web_get(self, rest: str, query: str) -> Optional[Answer]:
        if rest == "config":
            return Answer(200, assets.config_js(self._config()).encode(), "application/javascript")
        if rest == "i18ncatalog":
            return Answer(200, assets.I18N_CATALOG_JS.encode(), "application/javascript")
        page = re.fullmatch(r"app/([^/]+)/([^/]+)", rest)
        if page:
            return self._page(page.group(1), page.group(2))
        static = re.fullmatch(r"static/@[^/]+/(.+)", rest)
        if static:
            return self._static(static.group(1))
        return None

    def _config(self) -> Dict[str, Any]:
        return {
            "APP_BUILD": 0,
            "BUILD_NUMBER": int(BUILD_NUMBER),
            "BUILD_PUSH_NUMBER": 0,
            "LOCALE": LOCALE,
            "MRSPARKLE_PORT_NUMBER": str(self.port),
            "MRSPARKLE_ROOT_PATH": "",
            "SERVER_ZONEINFO": "",
            "SPLUNKD_PATH": f"/{LOCALE}/splunkd/__raw",
            "USERNAME": "admin",
            "USER_DISPLAYNAME": "Administrator",
            "VERSION_LABEL": "9.4.0",
            "UI_THEME": "light",
        }

    def _page(self, app: str, view: str) -> Optional[Answer]:
        if app != self.app:
            return None
        view_xml = self.addon / "default" / "data" / "ui" / "views" / f"{view}.xml"
        if not view_xml.exists():
            return None
        template = re.search(r'template="[^:"]+:/?templates/([^"]+)"', view_xml.read_text())
        if not template:
            return None  # Simple XML / Dashboard Studio views need Splunk Web itself
        html = (self.addon / "appserver" / "templates" / template.group(1)).read_bytes()
        cookies = (
            ("Set-Cookie", f"splunkweb_csrf_token_{self.port}={self.csrf_token}; Path=/; SameSite=Strict"),
            ("Set-Cookie", f"session_id_{self.port}={self.web_session}; Path=/; HttpOnly; SameSite=Strict"),
        )
        return Answer(200, html, "text/html; charset=utf-8", cookies)

    def _static(self, rel: str) -> Optional[Answer]:
        if rel == "js/i18n.js":
            return Answer(200, assets.I18N_JS.encode(), "application/javascript")
        if rel in ("build/api/layout.js", "build/api/layout-dark.js"):
            return Answer(200, assets.LAYOUT_JS.encode(), "application/javascript")
        if rel == "build/api/get_theme.js":
            return Answer(200, assets.GET_THEME_JS.encode(), "application/javascript")
        app_prefix = f"app/{self.app}/"
        if not rel.startswith(app_prefix):
            return None
        root = (self.addon / "appserver" / "static").resolve()
        path = (root / rel[len(app_prefix) :]).resolve()
        if root not in path.parents or not path.is_file():
            return None
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".js":
            ctype = "application/javascript"  # ES modules need a JavaScript MIME type
        return Answer(200, path.read_bytes(), ctype)

    # -- the splunkd proxy

    def _cookies(self, headers: Dict[str, str]) -> Dict[str, str]:
        jar: Dict[str, str] = {}
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key:
                jar[key] = value
        return jar

    def _splunkd(self, call: WebCall, raw_path: str, query: str, headers: Dict[str, str], body: bytes) -> Answer:
        jar = self._cookies(headers)
        json_mode = "output_mode=json" in query
        if not secrets.compare_digest(jar.get(f"session_id_{self.port}", ""), self.web_session):
            self._record(self._csrf_failures, call)
            return _error(401, "No web session: log in to Splunk Web first.", json_mode)
        # Splunk Web refuses a state-changing splunkd call whose X-Splunk-Form-Key header does not
        # match the splunkweb_csrf_token_<port> cookie (docs: "Splunk Web CSRF protection").
        if call.method != "GET":
            key = headers.get("x-splunk-form-key", "")
            cookie = jar.get(f"splunkweb_csrf_token_{self.port}", "")
            if not (key and secrets.compare_digest(key, self.csrf_token) and secrets.compare_digest(cookie, key)):
                self._record(self._csrf_failures, call)
                return _error(401, "Splunk cannot authenticate the request. CSRF validation failed.", json_mode)
        segments = [s for s in raw_path.split("/") if s]
        if len(segments) >= 3 and segments[0] == "servicesNS":
            app, endpoint = unquote(segments[2]), segments[3:]
        elif segments and segments[0] == "services":
            app, endpoint = None, segments[1:]
        else:
            self._record(self._unknown, call)
            return _error(404, f"Not Found: {call.path}", json_mode)
        endpoint_path = "/".join(unquote(s) for s in endpoint)
        if not self._is_exposed(endpoint_path, call.method):
            self._record(self._unknown, call)
            return _error(404, f"Splunk Web does not expose {call.method} {endpoint_path} (web.conf)", json_mode)
        if endpoint and unquote(endpoint[0]) in self.handler_files:
            return self._run_handler(call, app or self.app, [unquote(s) for s in endpoint], query, body, json_mode)
        if endpoint[:2] == ["search", "jobs"]:
            return self._search_jobs(call, endpoint[2:], query, body, json_mode)
        if endpoint[:3] == ["search", "v2", "jobs"]:
            return self._search_jobs(call, endpoint[3:], query, body, json_mode)
        return self._forward(call.method, raw_path, query, headers, body)

    def _is_exposed(self, endpoint: str, method: str) -> bool:
        return any(fnmatch.fnmatchcase(endpoint, pattern) and method in methods for pattern, methods in self.exposed)

    def _run_handler(
        self, call: WebCall, app: str, endpoint: List[str], query: str, body: bytes, json_mode: bool
    ) -> Answer:
        name = endpoint[1] if len(endpoint) > 1 else None
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True) if body else {}
        args = {k: v for k, v in form.items() if k not in RESERVED_ARGS}
        if call.method == "GET":
            action = "list"
        elif call.method == "DELETE" and name:
            action = "remove"
        elif call.method == "POST" and name:
            action = "edit"
        elif call.method == "POST":
            action = "create"
            name = (args.pop("name", None) or [""])[-1]
        else:
            self._record(self._unknown, call)
            return _error(404, f"Not Found: {call.method} {call.path}", json_mode)
        handler = endpoint[0]
        with self._lock:
            self._handler_calls.append(HandlerCall(handler, action, name, tuple(sorted(args))))
        assert self._worker is not None
        answer = self._worker.call(self.handler_files[handler], action, name, args, self.splunkd.session_key, app)
        if "error" in answer:
            err = answer["error"]
            if err["admin"]:
                return _error(err["status"], f"In handler '{handler}': {err['text']}", json_mode)
            # what splunkd's AdminManagerExternal answers for an exception out of a Python handler
            text = (
                f'Unexpected error "{err["type"]}" from python handler: "{err["text"]}". '
                "See splunkd.log/python.log for more details."
            )
            return _error(500, text, json_mode)
        entries = [_entry(handler, e, self.app) for e in answer["entities"]]
        params = parse_qs(query)
        if action == "list" and not name:
            search = (params.get("search") or [""])[-1]
            if search:
                entries = [e for e in entries if search_matches(e, search)]
        total = len(entries)
        offset = int((params.get("offset") or ["0"])[-1] or 0)
        count = int((params.get("count") or ["30"])[-1] or 0)
        page = entries[offset:] if count <= 0 else entries[offset : offset + count]
        feed_body, ctype = render_feed(
            base_uri=self.splunkd.uri,
            feed_path=f"/servicesNS/nobody/{app}/{handler}",
            title=handler,
            entries=page,
            total=total,
            offset=offset,
            per_page=count if count > 0 else total,
            json_mode=json_mode,
        )
        return Answer(201 if action == "create" else 200, feed_body, ctype)

    def _search_jobs(self, call: WebCall, rest: List[str], query: str, body: bytes, json_mode: bool) -> Answer:
        """The one search a UCC page runs (its footer compares the app's build with the page's):
        ``| rest services/apps/local/<app> splunk_server=local | fields build``, answered from the
        installed app.conf ``[install] build``. Any other search is refused and recorded: this is
        no search head."""
        params = parse_qs(query)
        if not rest and call.method == "POST":
            search = (parse_qs(body.decode("utf-8")).get("search") or [""])[-1]
            if re.fullmatch(
                rf"\|\s*rest services/apps/local/{re.escape(self.app)} splunk_server=local \| fields build",
                search.strip(),
            ):
                sid = f"standin_{len(self._jobs) + 1}"
                build = parse_conf_file(self.addon / "default" / "app.conf").get("install", {}).get("build", "")
                self._jobs[sid] = [{"build": build}]
                return Answer(201, json.dumps({"sid": sid}).encode(), "application/json")
        elif not rest and call.method == "GET" and (params.get("id") or [""])[-1] in self._jobs:
            sid = params["id"][-1]
            content = {
                "sid": sid,
                "dispatchState": "DONE",
                "isDone": True,
                "isFailed": False,
                "doneProgress": 1,
                "resultCount": len(self._jobs[sid]),
                "eventCount": 0,
                "messages": [],
            }
            entry = Entry(sid, "search/jobs", content, default_acl(self.app))
            feed, ctype = render_feed(
                base_uri=self.splunkd.uri,
                feed_path="/services/search/jobs",
                title="jobs",
                entries=[entry],
                total=1,
                offset=0,
                per_page=1,
                json_mode=True,
            )
            return Answer(200, feed, ctype)
        elif len(rest) == 2 and rest[0] in self._jobs and rest[1] in ("results", "results_preview"):
            results = self._jobs[rest[0]]
            fields = [{"name": k} for k in (results[0] if results else {})]
            doc = {"preview": False, "init_offset": 0, "messages": [], "fields": fields, "results": results}
            return Answer(200, json.dumps(doc).encode(), "application/json")
        self._record(self._unknown, call)
        return _error(400, "The Splunk Web stand-in runs no search but the page footer's build check", json_mode)

    def _forward(self, method: str, raw_path: str, query: str, headers: Dict[str, str], body: bytes) -> Answer:
        url = self.splunkd.uri + raw_path + (f"?{query}" if query else "")
        forwarded = {"Authorization": f"Splunk {self.splunkd.session_key}"}
        if headers.get("content-type"):
            forwarded["Content-Type"] = headers["content-type"]
        request = urllib.request.Request(url, data=body or None, headers=forwarded, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return Answer(resp.status, resp.read(), resp.headers.get("Content-Type", "application/json"))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read(), exc.headers.get("Content-Type", "application/json"))


def _error(status: int, text: str, json_mode: bool) -> Answer:
    body, ctype = render_error(text, json_mode)
    return Answer(status, body, ctype)


def _entry(endpoint: str, entity: Dict[str, Any], app: str) -> Entry:
    """A handler's ConfInfo item as splunkd renders it: ``eai:acl`` becomes the entry's ACL,
    ``disabled`` a JSON boolean (a UI that gets ``"0"`` shows every input as disabled)."""
    content: Dict[str, Any] = dict(entity["content"])
    metadata = entity.get("metadata", {})
    if "disabled" in content:
        content["disabled"] = str(content["disabled"]).strip().lower() in ("1", "true", "t", "yes", "y")
    for key in ("eai:appName", "eai:userName"):
        if key in metadata:
            content[key] = metadata[key]
    acl = metadata.get("eai:acl") or default_acl(app)
    return Entry(entity["name"], endpoint, content, acl)


def _make_handler(standin: SplunkWebStandin) -> Type[BaseHTTPRequestHandler]:
    class Handler(StandinHandler):
        server_version = "Splunk Web stand-in"

        def answer(self, headers: Dict[str, str], body: bytes) -> Answer:
            try:
                return standin._handle(self.command, self.path, headers, body)
            except Exception:
                with standin._lock:
                    standin._errors.append(traceback.format_exc())
                return Answer(500, b"Internal error in the Splunk Web stand-in", "text/plain")

        def answer_headers(self, headers: Dict[str, str], reply: Reply) -> List[Tuple[str, str]]:
            extra = reply.headers if isinstance(reply, Answer) else ()
            return [("Cache-Control", "no-store"), *extra]

    return Handler
