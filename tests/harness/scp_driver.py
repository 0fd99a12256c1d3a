"""Run a built search command the way splunkd does: the chunked protocol (v2) over stdin/stdout.

Framing: ``chunked 1.0,<metadata bytes>,<body bytes>\\n`` then the metadata JSON, then the body.
splunkd sends a getinfo chunk (metadata only), reads the command's reply, then sends execute
chunks with CSV bodies and reads one reply per chunk; the last execute chunk says
``"finished": true``. CSV bodies carry ``<field>`` and ``__mv_<field>`` columns; a multivalue is
``$a$;$b$`` (``$`` doubled inside a value) in the ``__mv_`` column and newline-joined in the plain
one. splunkd puts all plain columns first, then all ``__mv_`` columns. Checked byte-for-byte against
a recording of a real splunkd (tests/unit/test_scp_driver.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from tests.harness.pycache import bytecode_env

# A reply may carry any field size splunkd sent (csv's default limit is 128 KiB per field).
csv.field_size_limit(2**31 - 1)

Value = Union[str, List[str]]
Record = Dict[str, Value]
Chunk = Tuple[Dict[str, Any], bytes]

SPLUNKD_SEPARATORS = (",", ":")
_HEADER = re.compile(rb"chunked\s+1\.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")
_MV_ITEM = re.compile(r"\$(?P<item>(?:\$\$|[^$])*)\$(?:;|$)")
_BARE = re.compile(r"[A-Za-z0-9]+")
COMMAND_SCRIPT = "defenderlineage.py"


@dataclass
class CommandResult:
    getinfo: Dict[str, Any] = field(default_factory=dict)
    records: List[Record] = field(default_factory=list)
    messages: List[Tuple[str, str]] = field(default_factory=list)
    error: Optional[str] = None
    stderr: str = ""
    returncode: Optional[int] = None
    chunks_sent: int = 0
    seconds: float = 0.0
    replies: List[Dict[str, Any]] = field(default_factory=list)


def encode_chunk(
    metadata: Dict[str, Any], body: bytes = b"", separators: Tuple[str, str] = SPLUNKD_SEPARATORS
) -> bytes:
    """One transport chunk. splunkd writes compact JSON; pass other separators to match other writers."""
    meta = json.dumps(metadata, separators=separators).encode("utf-8") if metadata else b""
    return b"chunked 1.0,%d,%d\n" % (len(meta), len(body)) + meta + body


def read_chunk(stream: IO[bytes]) -> Optional[Chunk]:
    """The next chunk as (metadata, body), or None at a clean end of stream."""
    header = stream.readline()
    # The SDK that made the output recording wrote a newline after each chunk: tolerate blank lines.
    while header in (b"\n", b"\r\n"):
        header = stream.readline()
    if not header:
        return None
    match = _HEADER.fullmatch(header)
    if match is None:
        raise ValueError(f"not a chunk header: {header[:200]!r}")
    meta_len, body_len = int(match.group(1)), int(match.group(2))
    meta = _read_exactly(stream, meta_len)
    body = _read_exactly(stream, body_len)
    return (json.loads(meta.decode("utf-8")) if meta else {}), body


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size) if size else b""
    if len(data) != size:
        raise EOFError(f"stream ended after {len(data)} of {size} bytes")
    return data


def _quote(value: str) -> str:
    # splunkd quotes every value that is not plain ASCII letters and digits (seen in the recording).
    if value == "" or _BARE.fullmatch(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _cells(value: Optional[Value]) -> Tuple[str, str]:
    if value is None:
        return "", ""
    if isinstance(value, list):
        if not value:
            return "", ""
        if len(value) == 1:
            return str(value[0]), ""
        items = [str(v) for v in value]
        return "\n".join(items), "$" + "$;$".join(v.replace("$", "$$") for v in items) + "$"
    return str(value), ""


def records_to_csv(records: Sequence[Record], errors: str = "strict") -> bytes:
    """A CSV body as splunkd writes it: every field, then every ``__mv_<field>``; ``\\n`` line ends.
    ``errors="surrogatepass"`` writes lone surrogates as (invalid) UTF-8 bytes."""
    if not records:
        return b""
    fields: Dict[str, None] = {}
    for record in records:
        fields.update(dict.fromkeys(record))
    header = list(fields) + ["__mv_" + name for name in fields]
    lines = [",".join(_quote(h) for h in header)]
    for record in records:
        cells = [_cells(record.get(name)) for name in fields]
        row = [c[0] for c in cells] + [c[1] for c in cells]
        lines.append(",".join(_quote(c) for c in row))
    return ("\n".join(lines) + "\n").encode("utf-8", errors)


def decode_mv(encoded: str) -> List[str]:
    return [m.group("item").replace("$$", "$") for m in _MV_ITEM.finditer(encoded)]


def csv_to_records(body: bytes) -> List[Record]:
    """Records from a CSV body; a non-empty ``__mv_<field>`` turns ``<field>`` into a list."""
    if not body:
        return []
    rows = csv.reader(io.StringIO(body.decode("utf-8"), newline=""))
    header = next(rows, None)
    if header is None:
        return []
    records: List[Record] = []
    for values in rows:
        record: Record = {}
        for name, value in zip(header, values):
            if name.startswith("__mv_"):
                if value:
                    record[name[5:]] = decode_mv(value)
            elif name not in record:
                record[name] = value
        records.append(record)
    return records


def getinfo_metadata(
    args: Sequence[str], dispatch_dir: str, splunkd_uri: str, session_key: str, command: str
) -> Dict[str, Any]:
    """The getinfo metadata, with the key set of the recorded splunkd."""
    search = "| " + " ".join([command, *args])
    return {
        "action": "getinfo",
        "preview": False,
        "searchinfo": {
            "args": list(args),
            "raw_args": list(args),
            "dispatch_dir": dispatch_dir,
            "session_key": session_key,
            "splunkd_uri": splunkd_uri,
            "app": "TA-defender-lineage",
            "owner": "admin",
            "username": "admin",
            "sid": f"scp_driver.{int(time.time())}",
            "search": quote(search),
            "earliest_time": "0",
            "latest_time": "0",
            "splunk_version": "9.3.0",
        },
    }


def _inspector_messages(metadata: Dict[str, Any]) -> List[Tuple[str, str]]:
    inspector = metadata.get("inspector") or {}
    return [(str(m[0]), str(m[1])) for m in inspector.get("messages", []) if len(m) >= 2]


def _batches(records: Sequence[Record], size: int) -> List[Sequence[Record]]:
    if not records:
        return [[]]
    return [records[i : i + size] for i in range(0, len(records), size)]


class _Exchange:
    """The lockstep conversation with one command process."""

    def __init__(
        self,
        proc: subprocess.Popen,
        result: CommandResult,
        encoding_errors: str = "strict",
        bodies: Optional[Sequence[bytes]] = None,
    ) -> None:
        self.proc = proc
        self.result = result
        self.encoding_errors = encoding_errors
        self.bodies = bodies

    def request(self, metadata: Dict[str, Any], body: bytes = b"") -> Optional[Chunk]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(encode_chunk(metadata, body))
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._reply_after_exit()
        return self._reply()

    def _reply(self) -> Optional[Chunk]:
        assert self.proc.stdout is not None
        reply = read_chunk(self.proc.stdout)
        if reply is not None:
            self.result.replies.append(reply[0])
            self.result.messages.extend(_inspector_messages(reply[0]))
        return reply

    def _reply_after_exit(self) -> Optional[Chunk]:
        return self._reply()

    def run(self, getinfo: Dict[str, Any], records: Sequence[Record], chunk_size: int) -> None:
        reply = self.request(getinfo)
        if reply is None:
            self.result.error = "no getinfo reply"
            return
        self.result.getinfo = reply[0]
        if self._errors():
            return
        if self.bodies is not None:
            bodies = list(self.bodies) or [b""]
        else:
            bodies = [records_to_csv(b, self.encoding_errors) for b in _batches(records, max(1, chunk_size))]
        for index, body in enumerate(bodies):
            finished = index == len(bodies) - 1
            reply = self.request({"action": "execute", "finished": finished}, body)
            self.result.chunks_sent += 1
            if reply is None:
                self.result.error = f"no reply to execute chunk {index}"
                return
            self.result.records.extend(csv_to_records(reply[1]))
            if self._errors():
                return

    def _errors(self) -> bool:
        errors = [text for kind, text in self.result.messages if kind in ("ERROR", "FATAL")]
        if errors:
            self.result.error = errors[0]
        return bool(errors)


def run_command(
    addon_dir: Path,
    python: str,
    records: List[Record],
    args: Optional[List[str]] = None,
    chunk_size: int = 1000,
    splunkd_uri: str = "http://127.0.0.1:1",
    session_key: str = "x",
    timeout: float = 120,
    script: str = COMMAND_SCRIPT,
    encoding_errors: str = "strict",
    bodies: Optional[Sequence[bytes]] = None,
) -> CommandResult:
    """Run ``<addon_dir>/bin/<script>`` under ``python`` and stream ``records`` through it (or send
    ``bodies``, raw CSV bytes, one execute chunk each)."""
    bin_dir = Path(addon_dir).resolve() / "bin"
    result = CommandResult()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="scp_driver_") as home:
        dispatch_dir = os.path.join(home, "dispatch")
        os.makedirs(dispatch_dir)
        env = dict(os.environ, SPLUNK_HOME=home, **bytecode_env())
        with open(os.path.join(home, "stderr"), "w+b") as stderr:
            proc = subprocess.Popen(
                [python, str(bin_dir / script)],
                cwd=str(bin_dir),
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
            getinfo = getinfo_metadata(args or [], dispatch_dir, splunkd_uri, session_key, script.rsplit(".", 1)[0])
            exchange = _Exchange(proc, result, encoding_errors, bodies)
            _converse(proc, result, exchange, getinfo, records, chunk_size, timeout)
            stderr.seek(0)
            result.stderr = stderr.read().decode("utf-8", "replace")
    result.seconds = time.monotonic() - started
    return result


def _converse(
    proc: subprocess.Popen,
    result: CommandResult,
    exchange: _Exchange,
    getinfo: Dict[str, Any],
    records: Sequence[Record],
    chunk_size: int,
    timeout: float,
) -> None:
    failure: List[BaseException] = []

    def target() -> None:
        try:
            exchange.run(getinfo, records, chunk_size)
        except (OSError, ValueError, EOFError) as error:
            failure.append(error)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        proc.kill()
        worker.join(5)
        result.error = result.error or f"timed out after {timeout:g}s"
    _close(proc)
    result.returncode = proc.returncode
    if failure and result.error is None:
        result.error = f"protocol error: {failure[0]}"
    if result.error is None and result.returncode:
        result.error = f"command exited with status {result.returncode}"


def _close(proc: subprocess.Popen) -> None:
    for stream in (proc.stdin, proc.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
