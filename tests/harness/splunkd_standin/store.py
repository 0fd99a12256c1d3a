"""SQLite-backed state of the splunkd stand-in: conf files, storage/passwords, KV store.

One SQLite file, so that a restarted stand-in (or a second one on the same state_dir) sees the
same state. One connection per store, guarded by a lock (the HTTP server is threaded).
"""

from __future__ import annotations

import json
import pathlib
import re
import sqlite3
import threading
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

Doc = Dict[str, Any]
_COMPACT = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps with options builds one per call

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conf_files (app TEXT NOT NULL, conf TEXT NOT NULL, PRIMARY KEY (app, conf));
CREATE TABLE IF NOT EXISTS conf_stanzas (
    app TEXT NOT NULL, conf TEXT NOT NULL, stanza TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (app, conf, stanza));
CREATE TABLE IF NOT EXISTS passwords (
    name TEXT PRIMARY KEY, app TEXT NOT NULL, realm TEXT NOT NULL, username TEXT NOT NULL,
    clear_password TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kv_collections (
    app TEXT NOT NULL, name TEXT NOT NULL, config TEXT NOT NULL, PRIMARY KEY (app, name));
CREATE TABLE IF NOT EXISTS kv_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, app TEXT NOT NULL, collection TEXT NOT NULL,
    key TEXT NOT NULL, data TEXT NOT NULL, UNIQUE (app, collection, key));
"""


class AlreadyExists(Exception):
    pass


def password_entity_name(realm: str, username: str) -> str:
    """splunkd names a storage/passwords entity ``realm:username:``, colons escaped."""
    return f"{realm.replace(':', chr(92) + ':')}:{username.replace(':', chr(92) + ':')}:"


class Store:
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # No fsync per commit: still safe when a process is killed, which is all a test does to it;
        # only a power cut could lose the last commits.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        self._indexed: Set[Any] = set()  # fields, and (field, field) compound indexes

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    def _write(self, statements: Iterable[Tuple[str, Sequence[Any]]]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # ---- conf files -------------------------------------------------------------------------

    def conf_create_file(self, app: str, conf: str) -> None:
        self._write([("INSERT OR IGNORE INTO conf_files (app, conf) VALUES (?, ?)", (app, conf))])

    def conf_file_exists(self, conf: str, apps: Optional[Sequence[str]]) -> bool:
        rows = self._query("SELECT app FROM conf_files WHERE conf = ?", (conf,))
        return any(apps is None or row[0] in apps for row in rows)

    def conf_set(self, app: str, conf: str, stanza: str, fields: Dict[str, str], replace: bool = False) -> None:
        with self._lock:
            current: Dict[str, str] = {}
            if not replace:
                current = self.conf_get(app, conf, stanza) or {}
            current.update(fields)
            self._write(
                [
                    ("INSERT OR IGNORE INTO conf_files (app, conf) VALUES (?, ?)", (app, conf)),
                    (
                        "INSERT INTO conf_stanzas (app, conf, stanza, data) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (app, conf, stanza) DO UPDATE SET data = excluded.data",
                        (app, conf, stanza, json.dumps(current)),
                    ),
                ]
            )

    def conf_get(self, app: str, conf: str, stanza: str) -> Optional[Dict[str, str]]:
        rows = self._query(
            "SELECT data FROM conf_stanzas WHERE app = ? AND conf = ? AND stanza = ?", (app, conf, stanza)
        )
        return json.loads(rows[0][0]) if rows else None

    def conf_stanzas(self, conf: str, apps: Optional[Sequence[str]]) -> List[Tuple[str, str, Dict[str, str]]]:
        """(app, stanza, fields) sorted by stanza name, as splunkd lists them."""
        rows = self._query("SELECT app, stanza, data FROM conf_stanzas WHERE conf = ? ORDER BY stanza, app", (conf,))
        return [(a, s, json.loads(d)) for a, s, d in rows if apps is None or a in apps]

    def conf_delete(self, app: str, conf: str, stanza: str) -> bool:
        with self._lock:
            if self.conf_get(app, conf, stanza) is None:
                return False
            self._write([("DELETE FROM conf_stanzas WHERE app = ? AND conf = ? AND stanza = ?", (app, conf, stanza))])
            return True

    # ---- storage/passwords ------------------------------------------------------------------

    def pw_create(self, app: str, realm: str, username: str, clear_password: str) -> str:
        name = password_entity_name(realm, username)
        with self._lock:
            if self._query("SELECT 1 FROM passwords WHERE name = ?", (name,)):
                raise AlreadyExists(name)
            self._write(
                [
                    (
                        "INSERT INTO passwords (name, app, realm, username, clear_password) VALUES (?, ?, ?, ?, ?)",
                        (name, app, realm, username, clear_password),
                    )
                ]
            )
        return name

    def pw_list(self, apps: Optional[Sequence[str]]) -> List[Doc]:
        rows = self._query("SELECT name, app, realm, username, clear_password FROM passwords ORDER BY name")
        return [
            {"name": n, "app": a, "realm": r, "username": u, "clear_password": c}
            for n, a, r, u, c in rows
            if apps is None or a in apps
        ]

    def pw_get(self, name: str) -> Optional[Doc]:
        for pw in self.pw_list(None):
            if pw["name"] == name:
                return pw
        return None

    def pw_update(self, name: str, clear_password: str) -> None:
        self._write([("UPDATE passwords SET clear_password = ? WHERE name = ?", (clear_password, name))])

    def pw_delete(self, name: str) -> None:
        self._write([("DELETE FROM passwords WHERE name = ?", (name,))])

    # ---- KV store ---------------------------------------------------------------------------

    def kv_collection_create(self, app: str, name: str, config: Dict[str, str]) -> None:
        with self._lock:
            if self.kv_collection_get(app, name) is not None:
                raise AlreadyExists(name)
            self._write(
                [("INSERT INTO kv_collections (app, name, config) VALUES (?, ?, ?)", (app, name, json.dumps(config)))]
            )

    def kv_collection_update(self, app: str, name: str, config: Dict[str, str]) -> None:
        with self._lock:
            current = self.kv_collection_get(app, name) or {}
            current.update(config)
            self._write(
                [("UPDATE kv_collections SET config = ? WHERE app = ? AND name = ?", (json.dumps(current), app, name))]
            )

    def kv_collection_get(self, app: str, name: str) -> Optional[Dict[str, str]]:
        rows = self._query("SELECT config FROM kv_collections WHERE app = ? AND name = ?", (app, name))
        return json.loads(rows[0][0]) if rows else None

    def kv_collections(self, apps: Optional[Sequence[str]]) -> List[Tuple[str, str, Dict[str, str]]]:
        rows = self._query("SELECT app, name, config FROM kv_collections ORDER BY name, app")
        return [(a, n, json.loads(c)) for a, n, c in rows if apps is None or a in apps]

    def kv_collection_delete(self, app: str, name: str) -> None:
        self._write(
            [
                ("DELETE FROM kv_records WHERE app = ? AND collection = ?", (app, name)),
                ("DELETE FROM kv_collections WHERE app = ? AND name = ?", (app, name)),
            ]
        )

    def kv_all(self, app: str, collection: str) -> List[Doc]:
        rows = self._query(
            "SELECT data FROM kv_records WHERE app = ? AND collection = ? ORDER BY seq", (app, collection)
        )
        return [json.loads(r[0]) for r in rows]

    def kv_by_keys(self, app: str, collection: str, keys: Iterable[str]) -> List[Doc]:
        wanted = sorted(set(keys))
        found: List[Tuple[int, Doc]] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._query(
                f"SELECT seq, data FROM kv_records WHERE app = ? AND collection = ? AND key IN ({marks})",  # noqa: S608
                (app, collection, *chunk),
            )
            found.extend((seq, json.loads(data)) for seq, data in rows)
        found.sort(key=lambda item: item[0])
        return [doc for _, doc in found]

    def kv_by_values(self, app: str, collection: str, pairs: Sequence[Tuple[Any, ...]]) -> List[Doc]:
        """Rows whose ``field`` is one of ``values`` for any pair, or is an array (the caller still
        filters exactly); a pair's further items ``(field, "=" or ">=", string)`` keep only rows
        whose string ``field`` is equal to or sorts at or after ``string`` (or is an array). Each
        field gets an SQLite expression index, as a real KV store serves a query on an accelerated
        field from its index instead of scanning the collection."""
        found: Dict[int, str] = {}
        for field, values, *narrower in pairs:  # one SELECT each: SQLite then uses each field's index
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", field):
                raise ValueError(f"not a plain field name: {field!r}")
            self._ensure_index(field)
            marks = ",".join("?" * len(values))
            # The path is a literal (checked above) so that SQLite can use the expression index.
            # Separate SELECTs, so that each can use an index: the rows holding one of the values
            # (and meeting the narrowing conditions, from a compound index over the fields), those
            # where a narrowing field is an array, and those where the field itself is an array.
            names = [name for name, _, _ in narrower]
            for name, op, _ in narrower:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or op not in ("=", ">="):
                    raise ValueError(f"not a plain field name or operator: {name!r} {op!r}")
            # SQLite orders text by its bytes, as the KV store orders strings; a number is never
            # equal to or after a string in either. A field holding an array may hold a matching
            # string: such rows come from the other SELECTs and are evaluated exactly by the caller.
            narrow_sql = "".join(f" AND json_extract(data, '$.{name}') {op} ?" for name, op, _ in narrower)
            narrow_args = [value for _, _, value in narrower]
            in_values = f"json_extract(data, '$.{field}') IN ({marks})"
            wheres: List[Tuple[str, List[Any]]] = [(in_values + narrow_sql, [*values, *narrow_args])]
            if narrower:
                self._ensure_index(field, *names)
            for name in names:  # from the (nearly empty) index of the rows where it is an array
                self._ensure_index(name)
                wheres.append((f"json_type(data, '$.{name}') = 'array' AND +{in_values}", list(values)))
            wheres.append((f"json_type(data, '$.{field}') = 'array'", []))
            for where, where_args in wheres:
                rows = self._query(
                    f"SELECT seq, data FROM kv_records WHERE app = ? AND collection = ? AND {where}",  # noqa: S608
                    (app, collection, *where_args),
                )
                found.update(rows)
        return [json.loads(found[seq]) for seq in sorted(found)]

    def _ensure_index(self, field: str, *then: str) -> None:
        if then:  # a compound index (collections.conf accelerated_fields with several fields)
            fields = (field, *then)
            if fields in self._indexed:
                return
            columns = ", ".join(f"json_extract(data, '$.{name}')" for name in fields)
            with self._lock:
                self._conn.execute(
                    f"CREATE INDEX IF NOT EXISTS kv_by_{'_'.join(fields)} ON kv_records (app, collection, {columns})"
                )
                self._indexed.add(fields)
            return
        if field in self._indexed:
            return
        with self._lock:
            self._conn.execute(
                f"CREATE INDEX IF NOT EXISTS kv_by_{field} "
                f"ON kv_records (app, collection, json_extract(data, '$.{field}'))"
            )
            self._conn.execute(
                f"CREATE INDEX IF NOT EXISTS kv_type_{field} "
                f"ON kv_records (app, collection, json_type(data, '$.{field}'))"
            )
            self._indexed.add(field)

    def kv_save(self, app: str, collection: str, docs: Sequence[Doc]) -> None:
        """Insert or replace documents (each has ``_key``) in one transaction."""
        encode = _COMPACT.encode
        self._write(
            [
                (
                    "INSERT INTO kv_records (app, collection, key, data) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (app, collection, key) DO UPDATE SET data = excluded.data",
                    (app, collection, doc["_key"], encode(doc)),
                )
                for doc in docs
            ]
        )

    def kv_delete_keys(self, app: str, collection: str, keys: Iterable[str]) -> None:
        self._write(
            [
                ("DELETE FROM kv_records WHERE app = ? AND collection = ? AND key = ?", (app, collection, key))
                for key in keys
            ]
        )
