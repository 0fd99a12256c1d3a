"""The splunkd stand-in, exercised by the real solnlib/splunklib of the built add-on (in a
subprocess, under Python 3.9 and 3.13), plus the modular input runner's stream parsing."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from tests.harness.modinput_runner import parse_event_stream, run_modular_input, run_scheme
from tests.harness.splunkd_standin import SplunkdStandin, kvquery

ROOT = pathlib.Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "output" / "TA-defender-lineage"
LIB = APP_DIR / "lib"
STUB = ROOT / "tests" / "harness" / "splunk_stub"
APP = "TA-defender-lineage"
ACCOUNT_REALM = f"__REST_CREDENTIAL__#{APP}#configs/conf-ta_defender_lineage_account"
ACCOUNT_FIELDS = ["client_secret", "certificate", "private_key"]
PRIVATE_KEY = "-----BEGIN PRIVATE KEY-----\n" + "QUJD" * 200 + "\n-----END PRIVATE KEY-----\n"


def _find_python(version: str) -> Optional[str]:
    out = subprocess.run(
        [str(ROOT / "tools" / "find_python.sh"), version], capture_output=True, text=True, check=False
    ).stdout.strip()
    return out or None


def _require_built() -> None:
    if not (LIB / "solnlib").is_dir() or not (LIB / "splunklib").is_dir():
        pytest.skip(f"{APP_DIR} is not built: run `make build` first")


@pytest.fixture(params=["3.9", "3.13"])
def python(request: pytest.FixtureRequest) -> str:
    _require_built()
    found = _find_python(request.param)
    if found is None:
        pytest.skip(
            f"!!! Python {request.param} NOT FOUND: the add-on must run on it inside Splunk; "
            f"install it (pyenv install {request.param}) or this check is not done !!!"
        )
    return found


@pytest.fixture
def standin(tmp_path: pathlib.Path) -> Iterator[SplunkdStandin]:
    with SplunkdStandin(tmp_path / "splunkd", app=APP, max_lifetime=120.0) as sd:
        yield sd


# A client of the stand-in written against solnlib/splunklib as the add-on uses them.
PROBE = r"""
import json, logging, os, sys
lib, port, key, app = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sys.path.insert(0, lib)
from solnlib import conf_manager, credentials
from solnlib.modular_input import checkpointer
from solnlib.soln_exceptions import ConfManagerException, ConfStanzaNotExistException
from splunklib import binding, client

logging.disable(logging.CRITICAL)  # solnlib's retry decorator logs tracebacks of expected misses
HOST = {"scheme": "http", "host": "127.0.0.1", "port": port}
out = {}

def clean(stanza):
    return {k: v for k, v in stanza.items() if not k.startswith("eai:")}

def realm(conf):
    return "__REST_CREDENTIAL__#%s#configs/conf-%s" % (app, conf)

cfm = conf_manager.ConfManager(key, app, realm=realm("ta_defender_lineage_account"), **HOST)
accounts = cfm.get_conf("ta_defender_lineage_account")
out["account"] = clean(accounts.get("acme"))
out["account_acl_app"] = accounts.get("acme")["eai:access"]["app"]
out["accounts_all"] = {k: clean(v) for k, v in accounts.get_all().items()}
try:
    accounts.get("nope")
    out["missing_stanza"] = "found"
except ConfStanzaNotExistException:
    out["missing_stanza"] = "ConfStanzaNotExistException"
try:
    cfm.get_conf("no_such_conf")
    out["missing_conf"] = "found"
except ConfManagerException:
    out["missing_conf"] = "ConfManagerException"

scfm = conf_manager.ConfManager(key, app, realm=realm("ta_defender_lineage_settings"), **HOST)
settings = scfm.get_conf("ta_defender_lineage_settings")
out["proxy"] = clean(settings.get("proxy"))
out["logging"] = clean(settings.get("logging"))
# get_log_level takes no scheme/host/port: solnlib finds splunkd through the `splunk` package
out["log_level"] = conf_manager.get_log_level(
    logger=logging.getLogger("probe"), session_key=key, app_name=app,
    conf_name="ta_defender_lineage_settings")

ck = checkpointer.KVStoreCheckpointer("ta_defender_lineage_checkpoints", key, app, **HOST)
out["ck_initial"] = ck.get("defender_alerts://demo")
ck.update("defender_alerts://demo", {"cursor": "2024-01-01T00:00:00Z", "seen": ["a", "b"]})
out["ck_after_update"] = ck.get("defender_alerts://demo")
ck.batch_update([{"_key": "k1", "state": {"v": 1}}, {"_key": "k2", "state": [1, 2]}])
out["ck_batch"] = [ck.get("k1"), ck.get("k2")]
ck.delete("defender_alerts://demo")
out["ck_after_delete"] = ck.get("defender_alerts://demo")
ck.delete("never-existed")

cm = credentials.CredentialManager(key, app, realm="probe_realm", **HOST)
secret = "s3cr3t-" * 100
cm.set_password("probe_user", secret)
out["cred_roundtrip"] = cm.get_password("probe_user") == secret
cm.set_password("probe_user", "short")
out["cred_updated"] = cm.get_password("probe_user")
cm.delete_password("probe_user")
try:
    cm.get_password("probe_user")
    out["cred_after_delete"] = "found"
except credentials.CredentialNotExistException:
    out["cred_after_delete"] = "CredentialNotExistException"

svc = client.Service(token=key, app=app, owner="nobody", **HOST)
data = svc.kvstore["ta_defender_lineage_incidents"].data
data.batch_save(*[{"_key": "t1:%d" % i, "tenant": "t1", "n": i} for i in range(10)])
q = {"$or": [{"_key": "t1:2"}, {"_key": "t1:7"}, {"_key": "absent"}]}
out["kv_or"] = sorted(d["_key"] for d in data.query(query=json.dumps(q)))
out["kv_in_sorted"] = [d["n"] for d in data.query(query=json.dumps({"n": {"$in": [3, 1, 5]}}), sort="n:-1")]
out["kv_and"] = [d["n"] for d in data.query(
    query=json.dumps({"$and": [{"tenant": "t1"}, {"n": {"$gte": 8}}]}), sort="n")]
out["kv_page"] = [d["n"] for d in data.query(sort="n", limit=3, skip=2)]
out["kv_fields"] = sorted(data.query(limit=1, fields="n")[0])
out["kv_by_id"] = data.query_by_id("t1:4")["n"]
data.delete(query=json.dumps({"n": {"$lt": 5}}))
out["kv_after_delete_query"] = len(data.query())
data.delete_by_id("t1:9")
try:
    data.query_by_id("t1:9")
    out["kv_missing"] = "found"
except binding.HTTPError as e:
    out["kv_missing"] = e.status

bad = client.Service(token="not-the-key", app=app, owner="nobody", **HOST)
try:
    bad.kvstore["ta_defender_lineage_incidents"].data.query()
    out["bad_key"] = "accepted"
except binding.HTTPError as e:
    out["bad_key"] = e.status
print(json.dumps(out))
"""


def _seed(sd: SplunkdStandin) -> None:
    sd.add_ucc_account(
        "acme",
        {
            "tenant_id": "tenant-1",
            "client_id": "client-1",
            "auth_type": "certificate",
            "client_secret": "",
            "certificate": "CERT" * 80,
            "private_key": PRIVATE_KEY,
            "cloud": "global",
        },
        ACCOUNT_FIELDS,
    )
    sd.add_ucc_account(
        "beta",
        {"tenant_id": "tenant-2", "client_id": "client-2", "auth_type": "client_secret", "client_secret": "pa:ss#1"},
        ACCOUNT_FIELDS,
    )
    sd.set_ucc_settings(
        "proxy",
        {"proxy_enabled": "1", "proxy_url": "proxy.example", "proxy_port": "3128", "proxy_password": "pp"},
        ["proxy_password"],
    )
    sd.set_ucc_settings("logging", {"loglevel": "DEBUG"})
    sd.kv_create_collection("ta_defender_lineage_incidents")


def test_solnlib_and_splunklib_against_standin(python: str, standin: SplunkdStandin, tmp_path: pathlib.Path) -> None:
    _seed(standin)
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE, encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SPLUNK_HOME": str(tmp_path / "splunk_home"),
        "PYTHONPATH": str(STUB),
        "PYTHONDONTWRITEBYTECODE": "1",
        "SPLUNK_STANDIN_URI": standin.uri,
        "SPLUNK_STANDIN_SESSION_KEY": standin.session_key,
    }
    proc = subprocess.run(
        [python, str(probe), str(LIB), str(standin.port), standin.session_key, APP],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)

    # UCC's storage: conf holds "******", storage/passwords the JSON; ConfManager decrypts
    assert standin.conf_stanza("ta_defender_lineage_account", "acme") == {
        "tenant_id": "tenant-1",
        "client_id": "client-1",
        "auth_type": "certificate",
        "client_secret": "",
        "certificate": "******",
        "private_key": "******",
        "cloud": "global",
    }
    assert len(standin.credentials(ACCOUNT_REALM)) > 2  # chunked by 255 characters plus an end mark
    assert out["account"] == {
        "tenant_id": "tenant-1",
        "client_id": "client-1",
        "auth_type": "certificate",
        "client_secret": None,  # an empty conf value comes back as None through splunklib's Atom parsing
        "certificate": "CERT" * 80,
        "private_key": PRIVATE_KEY,
        "cloud": "global",
        "disabled": "0",
    }
    assert out["account_acl_app"] == APP
    assert sorted(out["accounts_all"]) == ["acme", "beta"]
    assert out["accounts_all"]["beta"]["client_secret"] == "pa:ss#1"
    assert out["missing_stanza"] == "ConfStanzaNotExistException"
    assert out["missing_conf"] == "ConfManagerException"
    assert out["proxy"]["proxy_password"] == "pp"
    assert out["proxy"]["proxy_port"] == "3128"
    assert out["logging"]["loglevel"] == "DEBUG"
    assert out["log_level"] == "DEBUG"

    assert out["ck_initial"] is None
    assert out["ck_after_update"] == {"cursor": "2024-01-01T00:00:00Z", "seen": ["a", "b"]}
    assert out["ck_batch"] == [{"v": 1}, [1, 2]]
    assert out["ck_after_delete"] is None
    assert "ta_defender_lineage_checkpoints" in standin.kv_collections()  # created on first use
    assert {r["_key"] for r in standin.kv_records("ta_defender_lineage_checkpoints")} == {"k1", "k2"}

    assert out["cred_roundtrip"] is True
    assert out["cred_updated"] == "short"
    assert out["cred_after_delete"] == "CredentialNotExistException"

    assert out["kv_or"] == ["t1:2", "t1:7"]
    assert out["kv_in_sorted"] == [5, 3, 1]
    assert out["kv_and"] == [8, 9]
    assert out["kv_page"] == [2, 3, 4]
    assert out["kv_fields"] == ["_key", "n"]
    assert out["kv_by_id"] == 4
    assert out["kv_after_delete_query"] == 5
    assert out["kv_missing"] == 404
    assert [r["n"] for r in standin.kv_records("ta_defender_lineage_incidents")] == [5, 6, 7, 8]

    assert out["bad_key"] == 401
    assert standin.unknown_calls == []
    assert standin.errors == []
    assert all(standin.session_key not in c.path and standin.session_key not in str(c.query) for c in standin.calls)
    assert standin.session_key not in repr(standin)


def _http(
    sd: SplunkdStandin, path: str, headers: Optional[Dict[str, str]] = None, method: str = "GET"
) -> Tuple[int, bytes]:
    req = urllib.request.Request(sd.uri + path, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_authentication(standin: SplunkdStandin) -> None:
    path = "/servicesNS/nobody/TA-defender-lineage/storage/passwords?output_mode=json"
    status, body = _http(standin, path)
    assert status == 401
    assert json.loads(body)["messages"][0]["text"] == "call not properly authenticated"
    assert _http(standin, path, {"Authorization": "Splunk wrong"})[0] == 401
    assert _http(standin, path, {"Authorization": f"Splunk {standin.session_key}"})[0] == 200
    assert _http(standin, path, {"Authorization": f"Bearer {standin.session_key}"})[0] == 200


def test_unknown_endpoint_is_recorded(standin: SplunkdStandin) -> None:
    auth = {"Authorization": f"Splunk {standin.session_key}"}
    status, body = _http(standin, "/services/server/info?output_mode=json", auth)
    assert status == 404
    assert json.loads(body)["messages"][0]["type"] == "ERROR"
    assert [(c.method, c.path) for c in standin.unknown_calls] == [("GET", "/services/server/info")]
    # a missing stanza is a known endpoint answering 404, not an unknown call
    status, _ = _http(standin, "/servicesNS/nobody/TA-defender-lineage/configs/conf-x/y", auth)
    assert status == 404
    assert len(standin.unknown_calls) == 1


def test_kvstore_unavailable_answers_503(standin: SplunkdStandin) -> None:
    auth = {"Authorization": f"Splunk {standin.session_key}"}
    standin.kv_save("coll", [{"_key": "a", "v": 1}])
    path = "/servicesNS/nobody/TA-defender-lineage/storage/collections/data/coll?output_mode=json"
    standin.set_kvstore_available(False)
    status, body = _http(standin, path, auth)
    assert status == 503
    assert "KV Store" in json.loads(body)["messages"][0]["text"]
    standin.set_kvstore_available(True)
    status, body = _http(standin, path, auth)
    assert status == 200
    assert json.loads(body) == [{"_key": "a", "v": 1, "_user": "nobody"}]


def test_state_survives_restart_and_lifetime_is_bounded(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    with SplunkdStandin(state) as first:
        first.add_ucc_account("acme", {"client_secret": "x", "tenant_id": "t"}, ["client_secret"])
        first.kv_save("c", [{"_key": "k", "v": 2}])
    second = SplunkdStandin(state, max_lifetime=0.5).start()
    try:
        assert second.conf_stanza("ta_defender_lineage_account", "acme") == {
            "client_secret": "******",
            "tenant_id": "t",
        }
        assert second.kv_records("c") == [{"_key": "k", "v": 2, "_user": "nobody"}]
        uri = second.uri
        deadline = time.monotonic() + 5
        while second.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not second.running
        with pytest.raises(OSError):
            urllib.request.urlopen(uri + "/services/storage/passwords", timeout=2)
    finally:
        second.stop()


def test_app_defaults_are_loaded(standin: SplunkdStandin) -> None:
    _require_built()
    standin.load_app_defaults(APP_DIR)
    assert "ta_defender_lineage_checkpoints" in standin.kv_collections()
    assert standin.conf_stanza("ta_defender_lineage_settings", "logging") == {"loglevel": "INFO"}
    standin.set_ucc_settings("logging", {"loglevel": "DEBUG"})
    assert standin.conf_stanza("ta_defender_lineage_settings", "logging") == {"loglevel": "DEBUG"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"$or": [{"_key": "a"}, {"_key": "c"}]}, ["a", "c"]),
        ({"$and": [{"t": "x"}, {"n": {"$gt": 1}}]}, ["c"]),
        ({"n": {"$in": [1, 3]}}, ["a", "c"]),
        ({"n": {"$nin": [1, 3]}}, ["b"]),
        ({"tags": "red"}, ["a"]),
        ({"t": "x", "n": 1}, ["a"]),
        ({"n": {"$gte": 2, "$lt": 3}}, ["b"]),
        ({"n": "1"}, []),  # no cross-type equality
        ({"missing": {"$exists": False}}, ["a", "b", "c"]),
        ({"t": {"$regex": "^Y$", "$options": "i"}}, ["b"]),
    ],
)
def test_kvquery(query: Dict[str, object], expected: List[str]) -> None:
    docs = [
        {"_key": "a", "t": "x", "n": 1, "tags": ["red", "blue"]},
        {"_key": "b", "t": "y", "n": 2},
        {"_key": "c", "t": "x", "n": 3},
    ]
    assert [d["_key"] for d in docs if kvquery.matches(d, query)] == expected


def test_kvquery_candidate_keys_and_sort() -> None:
    assert kvquery.candidate_keys({"$or": [{"_key": "a"}, {"_key": {"$in": ["b", "c"]}}]}) == {"a", "b", "c"}
    assert kvquery.candidate_keys({"$or": [{"_key": "a"}, {"n": 1}]}) is None
    docs = [{"n": 2, "s": "b"}, {"n": 1, "s": "b"}, {"n": 3, "s": "a"}]
    assert [d["n"] for d in kvquery.sort_docs(docs, kvquery.parse_sort("s,n:-1"))] == [3, 2, 1]
    with pytest.raises(kvquery.QueryError):
        kvquery.matches({}, {"n": {"$where": "1"}})


COMPLETE_STREAM = (
    b'<stream><event stanza="defender_alerts://demo" unbroken="1"><time>1700000000.000</time>'
    b"<data>{&quot;id&quot;: &quot;a1&quot;, &quot;x&quot;: &quot;&lt;&amp;&gt;&quot;}</data>"
    b"<source>tenant-1:alerts_v2</source><sourcetype>ms:defender:graph:alert</sourcetype>"
    b"<index>main</index><host>h1</host><done /></event>"
    b'<event stanza="defender_alerts://demo" unbroken="1"><data>second \xc3\xa9</data>'
    b"<sourcetype>ms:defender:graph:alert</sourcetype><done /></event></stream>"
)


def test_parse_complete_stream() -> None:
    events, error, complete = parse_event_stream(COMPLETE_STREAM)
    assert error is None
    assert complete
    assert len(events) == 2
    first = events[0]
    assert first.stanza == "defender_alerts://demo"
    assert first.time == "1700000000.000"
    assert json.loads(first.data) == {"id": "a1", "x": "<&>"}
    assert (first.source, first.sourcetype, first.index, first.host) == (
        "tenant-1:alerts_v2",
        "ms:defender:graph:alert",
        "main",
        "h1",
    )
    assert first.unbroken and first.done
    assert events[1].data == "second é"
    assert events[1].time == ""  # not written


def test_parse_truncated_stream() -> None:
    cut = COMPLETE_STREAM.index(b"<data>second")
    events, error, complete = parse_event_stream(COMPLETE_STREAM[:cut])
    assert error is None
    assert not complete
    assert [e.time for e in events] == ["1700000000.000"]
    # cut inside the first event: nothing was written
    assert parse_event_stream(COMPLETE_STREAM[:40])[0] == []
    assert parse_event_stream(b"") == ([], None, False)


def test_parse_malformed_stream_reports_error() -> None:
    events, error, _ = parse_event_stream(COMPLETE_STREAM.replace(b"</stream>", b"") + b"<event></wrong>")
    assert len(events) == 2
    assert error is not None


FAKE_INPUT = r"""
import os, sys, time
sys.path.insert(0, os.environ["TEST_LIB"])
from splunklib.modularinput.event import Event
from splunklib.modularinput.event_writer import EventWriter
from splunklib.modularinput.input_definition import InputDefinition
import splunk  # the stub, from PYTHONPATH
definition = InputDefinition.parse(sys.stdin)
ew = EventWriter()
for name, params in definition.inputs.items():
    ew.write_event(Event(data="cwd=%s index=%s" % (os.path.basename(os.getcwd()), params["index"]),
                         stanza=name, sourcetype="t", index=params["index"]))
sys.stderr.write("uri_ok=%s\n" % (definition.metadata["server_uri"] == os.environ["SPLUNK_STANDIN_URI"]))
sys.stdout.flush()
if os.environ.get("HANG"):
    sys.stdout.write('<event stanza="x"><data>partial')
    sys.stdout.flush()
    time.sleep(60)
ew.close()
"""


def test_runner_feeds_definition_and_parses_output(standin: SplunkdStandin, tmp_path: pathlib.Path) -> None:
    _require_built()
    bin_dir = tmp_path / "app" / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "fake_input.py"
    script.write_text(FAKE_INPUT, encoding="utf-8")
    stanzas = {"fake_input://one": {"index": "main"}, "fake_input://two": {}}
    common = {
        "script": script,
        "python": sys.executable,
        "standin": standin,
        "stanzas": stanzas,
        "splunk_home": tmp_path / "home",
        "checkpoint_dir": tmp_path / "ckpt",
    }
    result = run_modular_input(**common, env={"TEST_LIB": str(LIB)})  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert result.stream_complete and not result.killed
    assert [(e.stanza, e.data) for e in result.events] == [
        ("fake_input://one", "cwd=bin index=main"),
        ("fake_input://two", "cwd=bin index=default"),
    ]
    assert "uri_ok=True" in result.stderr
    assert (tmp_path / "home" / "var" / "log" / "splunk" / "splunkd.log").is_file()

    killed = run_modular_input(**common, env={"TEST_LIB": str(LIB), "HANG": "1"}, kill_after=1.0)  # type: ignore[arg-type]
    assert killed.killed
    assert killed.returncode != 0
    assert len(killed.events) == 2  # the partial third one does not count
    assert not killed.stream_complete


def test_run_scheme_of_generated_input(python: str) -> None:
    result = run_scheme(APP_DIR / "bin" / "defender_alerts.py", python)
    assert result.returncode == 0, result.xml
    assert result.title == "defender_alerts"
    assert "account" in result.arguments


def test_data_inputs_of_a_modular_input_scheme(standin: SplunkdStandin) -> None:
    """What splunktaucclib's DataInputModel calls (the Inputs page's handlers): create, list with
    ``disabled`` a JSON boolean, edit, disable/enable, delete answering the remaining list."""
    standin.set_conf("inputs", "defender_alerts", {"python.version": "python3"})  # the scheme, as UCC declares it
    base = "/servicesNS/nobody/TA-defender-lineage/data/inputs/defender_alerts"

    def call(method: str, path: str, form: Optional[Dict[str, str]] = None) -> Tuple[int, Dict]:
        data = urllib.parse.urlencode({**(form or {}), "output_mode": "json"}).encode() if method == "POST" else None
        url = standin.uri + path + ("" if method == "POST" else "?output_mode=json")
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Authorization": f"Splunk {standin.session_key}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read())

    status, body = call("POST", base, {"name": "a1", "account": "demo", "interval": "300"})
    assert status == 201 and body["entry"][0]["content"]["disabled"] is False
    assert call("POST", base, {"name": "a1"})[0] == 409
    assert call("POST", f"{base}/a1", {"interval": "600"})[1]["entry"][0]["content"]["interval"] == "600"
    assert call("POST", f"{base}/a1/disable")[1]["entry"][0]["content"]["disabled"] is True
    assert standin.conf_stanza("inputs", "defender_alerts://a1") == {
        "account": "demo",
        "interval": "600",
        "disabled": "1",
    }
    assert call("POST", f"{base}/a1/enable")[1]["entry"][0]["content"]["disabled"] is False
    assert [e["name"] for e in call("GET", base)[1]["entry"]] == ["a1"]
    status, body = call("DELETE", f"{base}/a1")
    assert status == 200 and body["entry"] == []
    assert call("GET", f"{base}/a1")[0] == 404
    assert call("GET", "/servicesNS/nobody/TA-defender-lineage/data/inputs/no_such_scheme")[0] == 404
    indexes = call("GET", "/servicesNS/nobody/-/data/indexes")[1]["entry"]
    assert {e["name"]: e["content"]["isInternal"] for e in indexes}["main"] is False
    assert standin.unknown_calls == []
