"""Run a generated modular input script the way splunkd does, and parse what it writes.

splunkd starts ``<python> <app>/bin/<input>.py`` with cwd = the app's bin directory, writes the
input definition XML to its stdin and reads an XML event stream from its stdout; stderr lines go
to splunkd.log. ``--scheme`` and ``--validate-arguments`` are run the same way.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, cast

from tests.harness.pycache import bytecode_env
from tests.harness.splunkd_standin.server import parse_conf_file

if TYPE_CHECKING:
    from tests.harness.splunkd_standin import SplunkdStandin

SPLUNK_STUB_DIR = pathlib.Path(__file__).resolve().parent / "splunk_stub"
SERVER_HOST = "splunkd-standin"


@dataclass
class Event:
    """One complete ``<event>`` of the stream; an element the script did not write is ""."""

    stanza: str
    time: str
    data: str
    source: str
    sourcetype: str
    index: str
    host: str
    unbroken: bool = False
    done: bool = False


@dataclass
class ModinputResult:
    returncode: int
    stdout: bytes
    stderr: str
    events: List[Event]
    killed: bool = False
    stream_error: Optional[str] = None  # the stream was not well-formed (beyond a truncated tail)
    stream_complete: bool = False  # </stream> was written
    seconds: float = 0.0  # the input process's life, start to exit (what benchmarks divide by)


@dataclass
class SchemeResult:
    returncode: int
    xml: str
    title: Optional[str] = None
    description: Optional[str] = None
    use_external_validation: Optional[str] = None
    use_single_instance: Optional[str] = None
    streaming_mode: Optional[str] = None
    arguments: Dict[str, Dict[str, Optional[str]]] = field(default_factory=dict)


class ModinputTimeout(AssertionError):
    def __init__(self, message: str, stdout: bytes, stderr: str) -> None:
        super().__init__(message)
        self.stdout = stdout
        self.stderr = stderr


# ---- stream parsing ---------------------------------------------------------------------------


def parse_event_stream(stdout: bytes) -> Tuple[List[Event], Optional[str], bool]:
    """Parse splunkd's modular input XML stream. Returns (events, error, complete).

    Every complete ``<event>`` element counts; a truncated trailing one (a killed process) does
    not, and is not an error. Anything that is not well-formed XML is reported in ``error``,
    with the events parsed before it.
    """
    events: List[Event] = []
    if not stdout.strip():
        return events, None, False
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    state = {"depth": 0, "complete": False}

    def drain() -> None:
        for item in parser.read_events():
            kind, elem = cast(Tuple[str, Any], item)
            if not isinstance(elem, ET.Element):
                continue
            if kind == "start":
                state["depth"] += 1
                continue
            state["depth"] -= 1
            if elem.tag == "event" and state["depth"] == 1:
                events.append(_event_from_element(elem))
            elif elem.tag == "stream" and state["depth"] == 0:
                state["complete"] = True

    error: Optional[str] = None
    try:
        parser.feed(stdout)
        drain()
    except ET.ParseError as exc:
        error = f"malformed event stream: {exc}"
        try:  # keep what was parsed before the error
            drain()
        except ET.ParseError:
            pass
    return events, error, bool(state["complete"])


def _event_from_element(elem: ET.Element) -> Event:
    def text(tag: str) -> str:
        child = elem.find(tag)
        return "" if child is None else child.text or ""

    return Event(
        stanza=elem.get("stanza", ""),
        time=text("time"),
        data=text("data"),
        source=text("source"),
        sourcetype=text("sourcetype"),
        index=text("index"),
        host=text("host"),
        unbroken=elem.get("unbroken") == "1",
        done=elem.find("done") is not None,
    )


# ---- XML documents splunkd writes to the script --------------------------------------------


def _effective_params(script: pathlib.Path, stanza: str, params: Mapping[str, str]) -> Dict[str, str]:
    """The parameters splunkd passes for a stanza: app ``[default]`` and ``[<scheme>]`` defaults
    from default/inputs.conf, splunkd's own host/index defaults, then the stanza's values."""
    merged: Dict[str, str] = {"host": SERVER_HOST, "index": "default"}
    inputs_conf = script.resolve().parent.parent / "default" / "inputs.conf"
    if inputs_conf.is_file():
        conf = parse_conf_file(inputs_conf)
        merged.update(conf.get("default", {}))
        merged.update(conf.get(stanza.split("://", 1)[0], {}))
    merged.update(params)
    return merged


def input_definition_xml(
    script: pathlib.Path,
    standin: SplunkdStandin,
    stanzas: Mapping[str, Mapping[str, str]],
    checkpoint_dir: pathlib.Path,
    app: Optional[str] = None,
) -> bytes:
    root = ET.Element("input")
    ET.SubElement(root, "server_host").text = SERVER_HOST
    ET.SubElement(root, "server_uri").text = standin.uri
    ET.SubElement(root, "session_key").text = standin.session_key
    ET.SubElement(root, "checkpoint_dir").text = str(checkpoint_dir)
    configuration = ET.SubElement(root, "configuration")
    for name, params in stanzas.items():
        stanza = ET.SubElement(configuration, "stanza", {"name": name, "app": app or standin.app})
        for key, value in _effective_params(script, name, params).items():
            ET.SubElement(stanza, "param", {"name": key}).text = value
    return ET.tostring(root, encoding="utf-8")


def validation_definition_xml(
    standin: SplunkdStandin, name: str, item: Mapping[str, str], checkpoint_dir: pathlib.Path
) -> bytes:
    root = ET.Element("items")
    ET.SubElement(root, "server_host").text = SERVER_HOST
    ET.SubElement(root, "server_uri").text = standin.uri
    ET.SubElement(root, "session_key").text = standin.session_key
    ET.SubElement(root, "checkpoint_dir").text = str(checkpoint_dir)
    element = ET.SubElement(root, "item", {"name": name})
    for key, value in item.items():
        ET.SubElement(element, "param", {"name": key}).text = value
    return ET.tostring(root, encoding="utf-8")


# ---- running --------------------------------------------------------------------------------


def _environment(
    splunk_home: pathlib.Path, standin: Optional[SplunkdStandin], extra: Optional[Mapping[str, str]]
) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for name in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(
        {
            "SPLUNK_HOME": str(splunk_home),
            "SPLUNK_DB": str(splunk_home / "var" / "lib" / "splunk"),
            "SPLUNK_SERVER_NAME": SERVER_HOST,
            "PYTHONPATH": str(SPLUNK_STUB_DIR),
            # warm starts as under splunkd, with output/ (which is packaged) kept free of __pycache__
            **bytecode_env(),
        }
    )
    if standin is not None:
        env["SPLUNK_STANDIN_URI"] = standin.uri
        env["SPLUNK_STANDIN_SESSION_KEY"] = standin.session_key
    if extra:
        env.update(extra)
    return env


def _run(
    argv: List[str],
    cwd: pathlib.Path,
    env: Mapping[str, str],
    stdin: bytes,
    timeout: float,
    kill_after: Optional[float],
) -> Tuple[int, bytes, str, bool, float]:
    """Return code, stdout, stderr, whether ``kill_after`` killed it, and when it exited (monotonic).

    The exit is taken from ``wait()`` while threads drain the pipes, as splunkd reads them: the
    moment the process is gone, not the moment this harness has finished joining its output.
    """
    proc = subprocess.Popen(
        argv,
        cwd=str(cwd),
        env=dict(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so a kill reaches its children too
    )
    started = time.monotonic()
    out_parts: List[bytes] = []
    err_parts: List[bytes] = []
    pipes = [
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True),
        threading.Thread(target=_drain, args=(proc.stdout, out_parts), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err_parts), daemon=True),
    ]
    for pipe in pipes:
        pipe.start()
    killed = timed_out = False
    try:
        proc.wait(timeout=timeout if kill_after is None else min(kill_after, timeout))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.wait()
        killed = kill_after is not None and kill_after <= timeout
        timed_out = not killed
    exited = time.monotonic()
    for pipe in pipes:
        pipe.join(max(1.0, started + timeout - time.monotonic()))
    if any(pipe.is_alive() for pipe in pipes):  # a child of the input still holds a pipe open
        _kill_group(proc)
        for pipe in pipes:
            pipe.join(5.0)
    out, err = b"".join(out_parts), b"".join(err_parts).decode("utf-8", "replace")
    if timed_out:
        raise ModinputTimeout(
            f"{argv[-1]} did not finish within {timeout}s; killed. stderr tail:\n" + err[-4000:], out, err
        )
    return proc.returncode, out, err, killed, exited


def _feed(stream: Optional[IO[bytes]], data: bytes) -> None:
    assert stream is not None
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, ValueError):  # the input exited (or was killed) before reading it all
        pass


def _drain(stream: Optional[IO[bytes]], parts: List[bytes]) -> None:
    assert stream is not None
    parts.append(stream.read())
    stream.close()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def _append_splunkd_log(splunk_home: pathlib.Path, script: pathlib.Path, stderr: str) -> None:
    if not stderr:
        return
    log_dir = splunk_home / "var" / "log" / "splunk"
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / "splunkd.log").open("a", encoding="utf-8") as fh:
        for line in stderr.splitlines():
            fh.write(f'ERROR ExecProcessor [modinput] - message from "{script}" {line}\n')


def _prepare_home(splunk_home: pathlib.Path) -> None:
    (splunk_home / "var" / "log" / "splunk").mkdir(parents=True, exist_ok=True)
    (splunk_home / "var" / "lib" / "splunk").mkdir(parents=True, exist_ok=True)


def run_modular_input(
    script: pathlib.Path,
    python: str,
    standin: SplunkdStandin,
    stanzas: Mapping[str, Mapping[str, str]],
    splunk_home: pathlib.Path,
    checkpoint_dir: pathlib.Path,
    timeout: float = 120.0,
    env: Optional[Mapping[str, str]] = None,
    kill_after: Optional[float] = None,
) -> ModinputResult:
    """Run ``script`` as splunkd runs a modular input and parse its event stream.

    ``kill_after``: SIGKILL the process (group) after this many seconds; ``result.killed`` tells
    whether that happened. Past ``timeout`` the process is killed and ModinputTimeout is raised.
    """
    script = pathlib.Path(script).resolve()
    splunk_home = pathlib.Path(splunk_home)
    _prepare_home(splunk_home)
    checkpoint_dir = pathlib.Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    stdin = input_definition_xml(script, standin, stanzas, checkpoint_dir)
    started = time.monotonic()
    returncode, out, err, killed, exited = _run(
        [python, str(script)], script.parent, _environment(splunk_home, standin, env), stdin, timeout, kill_after
    )
    seconds = exited - started
    _append_splunkd_log(splunk_home, script, err)
    events, stream_error, complete = parse_event_stream(out)
    return ModinputResult(
        returncode=returncode,
        stdout=out,
        stderr=err,
        events=events,
        killed=killed,
        stream_error=stream_error,
        stream_complete=complete,
        seconds=seconds,
    )


def run_scheme(script: pathlib.Path, python: str, timeout: float = 60.0) -> SchemeResult:
    """``<script> --scheme`` and its parsed <scheme> document."""
    script = pathlib.Path(script).resolve()
    with tempfile.TemporaryDirectory(prefix="splunk_home_") as home:
        env = _environment(pathlib.Path(home), None, None)
        returncode, out, _err, _, _ = _run([python, str(script), "--scheme"], script.parent, env, b"", timeout, None)
    text = out.decode("utf-8", "replace")
    result = SchemeResult(returncode=returncode, xml=text)
    try:
        root = ET.fromstring(out)  # noqa: S314 (our own child's output)
    except ET.ParseError:
        return result
    result.title = root.findtext("title")
    result.description = root.findtext("description")
    result.use_external_validation = root.findtext("use_external_validation")
    result.use_single_instance = root.findtext("use_single_instance")
    result.streaming_mode = root.findtext("streaming_mode")
    for arg in root.iterfind("endpoint/args/arg"):
        name = arg.get("name") or ""
        result.arguments[name] = {child.tag: child.text for child in arg}
    return result


def run_validate(
    script: pathlib.Path,
    python: str,
    standin: SplunkdStandin,
    item: Mapping[str, str],
    name: str = "demo",
    splunk_home: Optional[pathlib.Path] = None,
    checkpoint_dir: Optional[pathlib.Path] = None,
    timeout: float = 60.0,
    env: Optional[Mapping[str, str]] = None,
) -> Tuple[int, str, str]:
    """``<script> --validate-arguments`` with splunkd's validation XML on stdin.
    Returns (returncode, stdout, stderr); on failure stdout holds ``<error><message>``."""
    script = pathlib.Path(script).resolve()
    home = pathlib.Path(splunk_home) if splunk_home is not None else standin.state_dir / "splunk_home"
    _prepare_home(home)
    ckpt = pathlib.Path(checkpoint_dir) if checkpoint_dir is not None else home / "var" / "lib" / "splunk" / "modinputs"
    ckpt.mkdir(parents=True, exist_ok=True)
    stdin = validation_definition_xml(standin, name, item, ckpt)
    returncode, out, err, _, _ = _run(
        [python, str(script), "--validate-arguments"],
        script.parent,
        _environment(home, standin, env),
        stdin,
        timeout,
        None,
    )
    _append_splunkd_log(home, script, err)
    return returncode, out.decode("utf-8", "replace"), err
