"""The REST endpoints the stand-in serves, as splunkd answers them.

Each handler gets a parsed :class:`Request` and returns a :class:`Response`. Paths not routed
here return None (the server answers 404 and records the call as unknown).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Optional, Tuple
from urllib.parse import unquote

from . import kvquery
from .eai import Entry, default_acl, render_error, render_feed, search_matches
from .store import AlreadyExists, Store
from .ucc_settings import settings_entry

KV_MAX_DOCUMENTS_PER_BATCH_SAVE = 1000  # limits.conf [kvstore] max_documents_per_batch_save
KV_MAX_ROWS_PER_QUERY = 50000  # limits.conf [kvstore] max_rows_per_query
KV_UNAVAILABLE_TEXT = "KV Store is initializing. Please try again later."
DEFAULT_COUNT = 30  # splunkd's default page size for EAI listings


@dataclass
class Request:
    method: str
    raw_path: str
    owner: Optional[str]  # None for /services/...
    app: Optional[str]
    segments: List[str]  # raw (still percent-encoded) segments after the namespace
    query: Dict[str, List[str]]
    form: Dict[str, List[str]]  # urlencoded body (POST), empty otherwise
    body: bytes
    base_uri: str

    @property
    def json_mode(self) -> bool:
        return self.arg("output_mode") == "json"

    def arg(self, name: str, default: Optional[str] = None) -> Optional[str]:
        for source in (self.query, self.form):
            if source.get(name):
                return source[name][-1]
        return default

    def namespace_prefix(self) -> str:
        if self.owner is None:
            return "/services"
        return f"/servicesNS/{self.owner}/{self.app}"

    def visible_apps(self) -> Optional[List[str]]:
        if self.app is None or self.app == "-":
            return None
        return [self.app, "system"]

    def write_app(self) -> str:
        return self.app if self.app is not None and self.app != "-" else "system"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str


def _json(status: int, payload: Any) -> Response:
    return Response(status, json.dumps(payload).encode("utf-8"), "application/json; charset=UTF-8")


def error(req: Request, status: int, text: str) -> Response:
    body, ctype = render_error(text, req.json_mode)
    return Response(status, body, ctype)


class Api:
    def __init__(self, store: Store, system_confs: Callable[[], Dict[str, Dict[str, Dict[str, str]]]]) -> None:
        self.store = store
        self.system_confs = system_confs
        self.kvstore_available = True
        self._lock = threading.RLock()

    # ---- dispatch ---------------------------------------------------------------------------

    def dispatch(self, req: Request) -> Optional[Response]:
        seg = req.segments
        m = req.method
        if len(seg) == 2 and seg[0] == "properties" and m == "GET":
            return self.properties_get(req, unquote(seg[1]))
        if seg == ["properties"] and m == "POST":
            return self.properties_create(req)
        if len(seg) in (2, 3) and seg[0] == "configs" and seg[1].startswith("conf-"):
            conf = unquote(seg[1])[len("conf-") :]
            if len(seg) == 2:
                if m == "GET":
                    return self.conf_list(req, conf)
                return self.conf_create(req, conf) if m == "POST" else None
            stanza = unquote(seg[2])
            if m == "GET":
                return self.stanza_get(req, conf, stanza)
            if m == "POST":
                return self.stanza_update(req, conf, stanza)
            return self.stanza_delete(req, conf, stanza) if m == "DELETE" else None
        if seg[:2] == ["storage", "passwords"]:
            if len(seg) == 2:
                if m == "GET":
                    return self.pw_list(req)
                return self.pw_create(req) if m == "POST" else None
            # the entity name may hold "/" (realms such as ...#configs/conf-...)
            name = unquote("/".join(seg[2:]))
            if m == "GET":
                return self.pw_get(req, name)
            if m == "POST":
                return self.pw_update(req, name)
            return self.pw_delete(req, name) if m == "DELETE" else None
        if seg[:2] == ["data", "inputs"] and len(seg) >= 3:
            return self.data_inputs(req, unquote(seg[2]), [unquote(s) for s in seg[3:]])
        if seg == ["data", "indexes"] and m == "GET":
            return self.indexes_list(req)
        if seg[:2] == ["storage", "collections"] and len(seg) >= 3 and seg[2] in ("config", "data"):
            if not self.kvstore_available:
                return error(req, 503, KV_UNAVAILABLE_TEXT)
            if seg[2] == "config" and len(seg) == 3:
                if m == "GET":
                    return self.coll_list(req)
                return self.coll_create(req) if m == "POST" else None
            if seg[2] == "config" and len(seg) == 4:
                name = unquote(seg[3])
                if m == "GET":
                    return self.coll_get(req, name)
                if m == "POST":
                    return self.coll_update(req, name)
                return self.coll_delete(req, name) if m == "DELETE" else None
            if seg[2] == "data" and len(seg) in (4, 5):
                return self.kv_data(req, unquote(seg[3]), unquote(seg[4]) if len(seg) == 5 else None)
        if len(seg) == 2 and unquote(seg[0]).endswith("_settings") and m == "GET":
            return self.ucc_settings_get(req, unquote(seg[0]), unquote(seg[1]))  # ucc_settings.py says why
        return None

    # ---- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _page(req: Request, entries: List[Entry]) -> Tuple[List[Entry], int, int, int]:
        search = req.arg("search")
        if search:
            entries = [e for e in entries if search_matches(e, search)]
        total = len(entries)
        try:
            offset = int(req.arg("offset", "0") or 0)
            count = int(req.arg("count", str(DEFAULT_COUNT)) or 0)
        except ValueError:
            offset, count = 0, DEFAULT_COUNT
        page = entries[offset:] if count <= 0 else entries[offset : offset + count]
        return page, total, offset, count if count > 0 else total

    def _feed(self, req: Request, status: int, title: str, entries: List[Entry], paged: bool = True) -> Response:
        if paged:
            page, total, offset, per_page = self._page(req, entries)
        else:
            page, total, offset, per_page = entries, len(entries), 0, max(len(entries), 1)
        feed_path = req.namespace_prefix() + "/" + "/".join(req.segments)
        body, ctype = render_feed(
            base_uri=req.base_uri,
            feed_path=feed_path,
            title=title,
            entries=page,
            total=total,
            offset=offset,
            per_page=per_page,
            json_mode=req.json_mode,
        )
        return Response(status, body, ctype)

    def ucc_settings_get(self, req: Request, conf: str, stanza: str) -> Response:
        found = self._find_stanza(req, conf, stanza)
        app = found[0] if found else req.write_app()
        entry = settings_entry(self.store, app, conf, stanza, found[2] if found else None, req.arg("--cred--") == "1")
        if entry is None:
            return error(req, 404, f"Not Found: {conf} has no stanza {stanza}")
        return self._feed(req, 200, conf, [entry])

    # ---- conf files -------------------------------------------------------------------------

    def _stanzas(self, req: Request, conf: str) -> List[Tuple[str, str, Dict[str, str]]]:
        apps = req.visible_apps()
        rows = self.store.conf_stanzas(conf, apps)
        system = self.system_confs().get(conf, {})
        have = {s for _, s, _ in rows}
        rows.extend(("system", s, f) for s, f in system.items() if s not in have)
        rows.sort(key=lambda r: r[1])
        return rows

    def _conf_exists(self, req: Request, conf: str) -> bool:
        return conf in self.system_confs() or self.store.conf_file_exists(conf, req.visible_apps())

    @staticmethod
    def _stanza_entry(conf: str, app: str, stanza: str, fields: Dict[str, str]) -> Entry:
        content: Dict[str, Any] = {"disabled": False}
        content.update(fields)
        content["eai:appName"] = app
        content["eai:userName"] = "nobody"
        sharing = "system" if app == "system" else "app"
        return Entry(stanza, f"configs/conf-{conf}", content, default_acl(app, sharing=sharing), ["move", "disable"])

    def properties_get(self, req: Request, conf: str) -> Response:
        if not self._conf_exists(req, conf):
            return error(req, 404, f"Not Found: conf file {conf} does not exist")
        entries = [
            Entry(stanza, f"properties/{conf}", {}, default_acl(app)) for app, stanza, _ in self._stanzas(req, conf)
        ]
        return self._feed(req, 200, conf, entries)

    def properties_create(self, req: Request) -> Response:
        conf = req.arg("__conf")
        if not conf:
            return error(req, 400, "Missing argument: __conf")
        exists = self._conf_exists(req, conf)
        self.store.conf_create_file(req.write_app(), conf)
        return self._feed(req, 303 if exists else 201, "properties", [])

    def conf_list(self, req: Request, conf: str) -> Response:
        rows = self._stanzas(req, conf)
        entries = [self._stanza_entry(conf, app, stanza, fields) for app, stanza, fields in rows]
        return self._feed(req, 200, f"conf-{conf}", entries)

    def conf_create(self, req: Request, conf: str) -> Response:
        name = req.arg("name")
        if not name:
            return error(req, 400, "Missing argument: name")
        app = req.write_app()
        with self._lock:
            if self.store.conf_get(app, conf, name) is not None:
                return error(req, 409, f"An object with name={name} already exists")
            fields = {k: v[-1] for k, v in req.form.items() if k not in ("name", "output_mode")}
            self.store.conf_set(app, conf, name, fields)
        return self._feed(req, 201, f"conf-{conf}", [self._stanza_entry(conf, app, name, fields)], paged=False)

    def _find_stanza(self, req: Request, conf: str, stanza: str) -> Optional[Tuple[str, str, Dict[str, str]]]:
        for row in self._stanzas(req, conf):
            if row[1] == stanza:
                return row
        return None

    def stanza_get(self, req: Request, conf: str, stanza: str) -> Response:
        row = self._find_stanza(req, conf, stanza)
        if row is None:
            return error(req, 404, f"Could not find object id={stanza}")
        return self._feed(req, 200, f"conf-{conf}", [self._stanza_entry(conf, *row)], paged=False)

    def stanza_update(self, req: Request, conf: str, stanza: str) -> Response:
        row = self._find_stanza(req, conf, stanza)
        if row is None:
            return error(req, 404, f"Could not find object id={stanza}")
        app = row[0]
        fields = {k: v[-1] for k, v in req.form.items() if k != "output_mode"}
        self.store.conf_set(app, conf, stanza, fields)
        updated = self.store.conf_get(app, conf, stanza) or {}
        return self._feed(req, 200, f"conf-{conf}", [self._stanza_entry(conf, app, stanza, updated)], paged=False)

    def stanza_delete(self, req: Request, conf: str, stanza: str) -> Response:
        row = self._find_stanza(req, conf, stanza)
        if row is None or not self.store.conf_delete(row[0], conf, stanza):
            return error(req, 404, f"Could not find object id={stanza}")
        req.segments = req.segments[:-1]
        return self.conf_list(req, conf)

    # ---- storage/passwords ------------------------------------------------------------------

    @staticmethod
    def _pw_entry(pw: Dict[str, Any]) -> Entry:
        digest = hashlib.sha256(pw["clear_password"].encode("utf-8")).digest()
        content = {
            "clear_password": pw["clear_password"],
            "encr_password": "$7$" + base64.b64encode(digest).decode("ascii"),
            "password": "********",
            "realm": pw["realm"],
            "username": pw["username"],
        }
        return Entry(pw["name"], "storage/passwords", content, default_acl(pw["app"]))

    def pw_list(self, req: Request) -> Response:
        entries = [self._pw_entry(pw) for pw in self.store.pw_list(req.visible_apps())]
        return self._feed(req, 200, "passwords", entries)

    def pw_create(self, req: Request) -> Response:
        name = req.arg("name")
        password = req.arg("password")
        if not name or password is None:
            return error(req, 400, "Missing argument: name and password are required")
        realm = req.arg("realm", "") or ""
        try:
            entity = self.store.pw_create(req.write_app(), realm, name, password)
        except AlreadyExists as exc:
            return error(req, 409, f"An object with name={exc} already exists")
        pw = self.store.pw_get(entity)
        assert pw is not None
        return self._feed(req, 201, "passwords", [self._pw_entry(pw)], paged=False)

    def pw_get(self, req: Request, name: str) -> Response:
        pw = self.store.pw_get(name)
        if pw is None:
            return error(req, 404, f"Could not find object id={name}")
        return self._feed(req, 200, "passwords", [self._pw_entry(pw)], paged=False)

    def pw_update(self, req: Request, name: str) -> Response:
        pw = self.store.pw_get(name)
        if pw is None:
            return error(req, 404, f"Could not find object id={name}")
        password = req.arg("password")
        if password is None:
            return error(req, 400, "Missing argument: password")
        self.store.pw_update(name, password)
        pw["clear_password"] = password
        return self._feed(req, 200, "passwords", [self._pw_entry(pw)], paged=False)

    def pw_delete(self, req: Request, name: str) -> Response:
        if self.store.pw_get(name) is None:
            return error(req, 404, f"Could not find object id={name}")
        self.store.pw_delete(name)
        req.segments = ["storage", "passwords"]
        return self.pw_list(req)

    # ---- data/inputs/<scheme> (modular inputs, stored as inputs.conf stanzas <scheme>://<name>) --

    def _input_entry(self, scheme: str, app: str, name: str, fields: Dict[str, str]) -> Entry:
        content: Dict[str, Any] = {k: v for k, v in fields.items() if k != "disabled"}
        # splunkd answers ``disabled`` as a JSON boolean, and an input without the key is enabled
        content["disabled"] = str(fields.get("disabled", "0")).strip().lower() in ("1", "true", "t", "yes", "y")
        content["eai:appName"] = app
        content["eai:userName"] = "nobody"
        return Entry(name, f"data/inputs/{scheme}", content, default_acl(app), ["disable", "enable"])

    def _input_rows(self, req: Request, scheme: str) -> List[Tuple[str, str, Dict[str, str]]]:
        prefix = f"{scheme}://"
        return [(a, s[len(prefix) :], f) for a, s, f in self._stanzas(req, "inputs") if s.startswith(prefix)]

    def data_inputs(self, req: Request, scheme: str, rest: List[str]) -> Optional[Response]:
        """List, create (``name``), read, update, delete, ``disable`` and ``enable`` the inputs of a
        modular input scheme the app declares (its ``README/inputs.conf.spec``; here: any
        ``[<scheme>]`` stanza default/inputs.conf names, as UCC's build writes one per service)."""
        if self.store.conf_get(req.write_app(), "inputs", scheme) is None and not self._input_rows(req, scheme):
            return error(req, 404, f"Not Found: no modular input scheme {scheme}")
        m = req.method
        title = scheme
        if not rest:
            if m == "GET":
                rows = self._input_rows(req, scheme)
                return self._feed(req, 200, title, [self._input_entry(scheme, *r) for r in rows])
            if m != "POST":
                return None
            name = req.arg("name")
            if not name:
                return error(req, 400, "Missing argument: name")
            fields = {k: v[-1] for k, v in req.form.items() if k not in ("name", "output_mode")}
            app = req.write_app()
            with self._lock:
                if self.store.conf_get(app, "inputs", f"{scheme}://{name}") is not None:
                    return error(req, 409, f"An object with name={name} already exists")
                self.store.conf_set(app, "inputs", f"{scheme}://{name}", fields)
            return self._feed(req, 201, title, [self._input_entry(scheme, app, name, fields)], paged=False)
        name = rest[0]
        row = next((r for r in self._input_rows(req, scheme) if r[1] == name), None)
        if row is None:
            return error(req, 404, f"Could not find object id={name}")
        app, stanza = row[0], f"{scheme}://{name}"
        if len(rest) == 2 and rest[1] in ("disable", "enable") and m == "POST":
            self.store.conf_set(app, "inputs", stanza, {"disabled": "1" if rest[1] == "disable" else "0"})
        elif len(rest) == 1 and m == "POST":
            fields = {k: v[-1] for k, v in req.form.items() if k != "output_mode"}
            self.store.conf_set(app, "inputs", stanza, fields)
        elif len(rest) == 1 and m == "DELETE":
            self.store.conf_delete(app, "inputs", stanza)
            req.segments = req.segments[:-1]
            rows = self._input_rows(req, scheme)  # splunkd answers a delete with the remaining list
            return self._feed(req, 200, title, [self._input_entry(scheme, *r) for r in rows])
        elif not (len(rest) == 1 and m == "GET"):
            return None
        fields = self.store.conf_get(app, "inputs", stanza) or {}
        return self._feed(req, 200, title, [self._input_entry(scheme, app, name, fields)], paged=False)

    # Indexes a fresh Splunk Enterprise has; internal ones answer isInternal=1 as splunkd does.
    INDEXES: ClassVar[Dict[str, bool]] = {
        "main": False,
        "history": False,
        "summary": False,
        "_internal": True,
        "_audit": True,
    }

    def indexes_list(self, req: Request) -> Response:
        entries = [
            Entry(
                name,
                "data/indexes",
                {"disabled": False, "isInternal": internal, "datatype": "event"},
                default_acl("system", sharing="system"),
            )
            for name, internal in sorted(self.INDEXES.items())
        ]
        return self._feed(req, 200, "indexes", entries)

    # ---- KV store collections ---------------------------------------------------------------

    @staticmethod
    def _coll_entry(app: str, name: str, config: Dict[str, str]) -> Entry:
        content: Dict[str, Any] = {"disabled": False, "enforceTypes": "false", "replicate": "false"}
        content.update(config)
        content["eai:appName"] = app
        content["eai:userName"] = "nobody"
        return Entry(name, "storage/collections/config", content, default_acl(app))

    def coll_list(self, req: Request) -> Response:
        rows = self.store.kv_collections(req.visible_apps())
        return self._feed(req, 200, "collections-conf", [self._coll_entry(*r) for r in rows])

    def coll_create(self, req: Request) -> Response:
        name = req.arg("name")
        if not name:
            return error(req, 400, "Missing argument: name")
        config = {k: v[-1] for k, v in req.form.items() if k not in ("name", "output_mode")}
        app = req.write_app()
        try:
            self.store.kv_collection_create(app, name, config)
        except AlreadyExists:
            return error(req, 409, f"An object with name={name} already exists")
        return self._feed(req, 201, "collections-conf", [self._coll_entry(app, name, config)], paged=False)

    def _find_coll(self, req: Request, name: str) -> Optional[Tuple[str, str, Dict[str, str]]]:
        for row in self.store.kv_collections(req.visible_apps()):
            if row[1] == name:
                return row
        return None

    def coll_get(self, req: Request, name: str) -> Response:
        row = self._find_coll(req, name)
        if row is None:
            return error(req, 404, f"Could not find object id={name}")
        return self._feed(req, 200, "collections-conf", [self._coll_entry(*row)], paged=False)

    def coll_update(self, req: Request, name: str) -> Response:
        row = self._find_coll(req, name)
        if row is None:
            return error(req, 404, f"Could not find object id={name}")
        config = {k: v[-1] for k, v in req.form.items() if k != "output_mode"}
        self.store.kv_collection_update(row[0], name, config)
        updated = self.store.kv_collection_get(row[0], name) or {}
        return self._feed(req, 200, "collections-conf", [self._coll_entry(row[0], name, updated)], paged=False)

    def coll_delete(self, req: Request, name: str) -> Response:
        row = self._find_coll(req, name)
        if row is None:
            return error(req, 404, f"Could not find object id={name}")
        self.store.kv_collection_delete(row[0], name)
        req.segments = ["storage", "collections", "config"]
        return self.coll_list(req)

    # ---- KV store data ----------------------------------------------------------------------

    def kv_data(self, req: Request, collection: str, sub: Optional[str]) -> Optional[Response]:
        app = req.app if req.app not in (None, "-") else None
        if app is None or self.store.kv_collection_get(app, collection) is None:
            return error(req, 404, f"Collection: {collection} does not exist")
        try:
            if sub is None:
                if req.method == "GET":
                    return self._kv_query(req, app, collection)
                if req.method == "POST":
                    return self._kv_insert(req, app, collection)
                if req.method == "DELETE":
                    return self._kv_delete_query(req, app, collection)
                return None
            if sub == "batch_save" and req.method == "POST":
                return self._kv_batch_save(req, app, collection)
            if sub == "batch_find" and req.method == "POST":
                return self._kv_batch_find(req, app, collection)
            if req.method == "GET":
                docs = self.store.kv_by_keys(app, collection, [sub])
                return _json(200, docs[0]) if docs else error(req, 404, "Could not find object.")
            if req.method == "POST":
                doc = self._json_body(req)
                if not isinstance(doc, dict):
                    return error(req, 400, "Request body must be a JSON object")
                doc = {**doc, "_key": sub, "_user": "nobody"}
                self.store.kv_save(app, collection, [doc])
                return _json(200, {"_key": sub})
            if req.method == "DELETE":
                if not self.store.kv_by_keys(app, collection, [sub]):
                    return error(req, 404, "Could not find object.")
                self.store.kv_delete_keys(app, collection, [sub])
                return Response(200, b"", "application/json; charset=UTF-8")
            return None
        except kvquery.QueryError as exc:
            return error(req, 400, str(exc))

    @staticmethod
    def _json_body(req: Request) -> Any:
        try:
            return json.loads(req.body.decode("utf-8"))
        except ValueError as exc:
            raise kvquery.QueryError(f"Invalid JSON in request body: {exc}") from None

    def _select(
        self,
        app: str,
        collection: str,
        query_text: str,
        fields: Optional[str],
        sort: Optional[str],
        limit: Optional[str],
        skip: Optional[str],
    ) -> List[Dict[str, Any]]:
        query = kvquery.parse_query(query_text)
        keys = kvquery.candidate_keys(query)
        values = kvquery.candidate_values(query) if keys is None else None
        if keys is not None:
            docs = self.store.kv_by_keys(app, collection, keys)
        elif values is not None:
            docs = self.store.kv_by_values(app, collection, values)
        else:
            docs = self.store.kv_all(app, collection)
        docs = [d for d in docs if kvquery.matches(d, query)]
        if sort:
            docs = kvquery.sort_docs(docs, kvquery.parse_sort(sort))
        try:
            skip_n = int(skip or 0)
            limit_n = int(limit or 0)
        except ValueError:
            raise kvquery.QueryError("limit and skip must be integers") from None
        docs = docs[skip_n:]
        cap = KV_MAX_ROWS_PER_QUERY if limit_n <= 0 else min(limit_n, KV_MAX_ROWS_PER_QUERY)
        docs = docs[:cap]
        if fields:
            docs = kvquery.project(docs, fields)
        return docs

    def _kv_query(self, req: Request, app: str, collection: str) -> Response:
        docs = self._select(
            app,
            collection,
            req.arg("query", "") or "",
            req.arg("fields"),
            req.arg("sort"),
            req.arg("limit"),
            req.arg("skip"),
        )
        return _json(200, docs)

    def _kv_batch_find(self, req: Request, app: str, collection: str) -> Response:
        queries = self._json_body(req)
        if not isinstance(queries, list) or not all(isinstance(q, dict) for q in queries):
            return error(req, 400, "Request body must be a JSON array of query objects")
        results = []
        for q in queries:
            sort = q.get("sort")
            if isinstance(sort, list):
                sort = ",".join(f"{k}:{v}" for item in sort for k, v in item.items())
            fields = q.get("fields")
            if isinstance(fields, list):
                fields = ",".join(fields)
            results.append(
                self._select(
                    app,
                    collection,
                    json.dumps(q.get("query", {})),
                    fields,
                    sort,
                    str(q.get("limit", 0)),
                    str(q.get("skip", 0)),
                )
            )
        return _json(200, results)

    def _kv_insert(self, req: Request, app: str, collection: str) -> Response:
        doc = self._json_body(req)
        if not isinstance(doc, dict):
            return error(req, 400, "Request body must be a JSON object")
        with self._lock:
            key = str(doc.get("_key") or secrets.token_hex(12))
            if self.store.kv_by_keys(app, collection, [key]):
                return error(req, 409, "A document with the same key and user already exists.")
            self.store.kv_save(app, collection, [{**doc, "_key": key, "_user": "nobody"}])
        return _json(201, {"_key": key})

    def _kv_batch_save(self, req: Request, app: str, collection: str) -> Response:
        docs = self._json_body(req)
        if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
            return error(req, 400, "Request body must be a JSON array of objects")
        if len(docs) > KV_MAX_DOCUMENTS_PER_BATCH_SAVE:
            return error(
                req,
                400,
                "Request exceeds API limits - see limits.conf for details. (Too many documents for a "
                f"single batch save, limit is {KV_MAX_DOCUMENTS_PER_BATCH_SAVE})",
            )
        to_save = [{**d, "_key": str(d.get("_key") or secrets.token_hex(12)), "_user": "nobody"} for d in docs]
        self.store.kv_save(app, collection, to_save)
        return _json(200, [d["_key"] for d in to_save])

    def _kv_delete_query(self, req: Request, app: str, collection: str) -> Response:
        query_text = req.arg("query", "") or ""
        with self._lock:
            docs = self._select(app, collection, query_text, None, None, None, None)
            self.store.kv_delete_keys(app, collection, [d["_key"] for d in docs])
        return Response(200, b"", "application/json; charset=UTF-8")
