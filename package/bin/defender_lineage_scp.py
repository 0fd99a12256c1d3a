"""The search command protocol (chunked, version 2), as ``defenderlineage`` speaks it with splunkd.

Why the project's own and not splunklib's ``StreamingCommand``: splunklib turns every record into a
dict and writes it back with a Python loop per field (about three quarters of the command's time),
holds a whole chunk as dicts (3 GB for a 50,000-record chunk), and refuses some input outright (a
NUL byte fails its CSV reader on Python 3.9, a field above 10 MB fails it everywhere, a lone
surrogate in an output value fails its writer): one such record fails the whole search. This module
reads and writes the same protocol with the ``csv`` module directly, keeps records as the lists of
cells splunkd sent, and never lets a record's content fail a chunk. splunklib stays the reference:
``tests/integration/test_scp_oracle.py`` runs a splunklib command side by side with this layer.

**Framing** (the protocol splunkd speaks; see the recording in ``tests/fixtures/recordings/``).
Each chunk, both ways, is ``chunked 1.0,<metadata bytes>,<body bytes>\\n``, then that many bytes of
JSON metadata, then that many bytes of body. splunkd first sends ``getinfo`` (metadata only: the
search's ``searchinfo``, with the command's ``args``); the command answers with its configuration
(``{"type": "stateful"}`` for a streaming command that must stay on the search head, which is what
splunklib sends for ``@Configuration(distributed=False)``) and with any error messages in
``inspector.messages``. Then splunkd sends ``execute`` chunks, the last one with ``"finished":
true``; the command answers each with exactly one chunk: ``{"inspector": {...}, "finished": <as
asked>}`` and the records as CSV. On an error the reply carries ``["ERROR", text]`` in
``inspector.messages`` and the command exits with status 1: splunkd shows the text and ends the
search.

**Bodies** are CSV (RFC 4180 quoting, any line ending in, ``\\r\\n`` out as splunklib writes). A
field ``x`` with several values comes as ``x`` (values joined by newlines) plus ``__mv_x``
(``$a$;$b$``, ``$`` doubled inside a value); ``__mv_x`` is empty for a single value. This layer
passes the cells through untouched (so multivalues keep their exact encoding) and appends the
command's columns, each with its ``__mv_`` column.

**What cannot be read is replaced, never fatal.** Bytes that are not UTF-8 and NUL bytes (which the
CSV reader of Python 3.9 refuses) become U+FFFD; a chunk where that happened is flagged
(:attr:`Chunk.replaced`) so the command can say so on the records concerned. No field size limit
short of what splunkd can send (a chunk body's size is at most what the header says). A cell that
cannot be encoded as UTF-8 on the way out (a lone surrogate from a JSON ``\\udc00`` escape) is
written with U+FFFD instead (:meth:`RecordsWriter.write_row` says when).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from typing import IO, Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

HEADER = re.compile(rb"chunked\s+1\.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")
MV_PREFIX = "__mv_"
REPLACEMENT = "\ufffd"
_REPLACEMENT_BYTES = REPLACEMENT.encode("utf-8")
# A chunk body is bounded by its header's length, not by csv's default 128 KiB per field; the C
# reader takes a C long, 2**31 - 1 on every platform Splunk runs on.
csv.field_size_limit(2**31 - 1)

_REPLACE_ERRORS = "defender_lineage_scp.replace"
_replacements = [0]  # how many times the handler below ran: the current chunk's "replaced" flag


def _replace_and_count(error: UnicodeError) -> Tuple[Union[str, bytes], int]:
    if isinstance(error, UnicodeDecodeError):
        _replacements[0] += 1
        return REPLACEMENT, error.end
    if isinstance(error, UnicodeEncodeError):  # the UTF-8 encoder takes only ASCII text or bytes back
        _replacements[0] += 1
        return _REPLACEMENT_BYTES, error.end
    raise error


codecs.register_error(_REPLACE_ERRORS, _replace_and_count)


class ProtocolError(Exception):
    """splunkd sent something that is not the protocol (bad header, truncated chunk, bad metadata)."""


class SplunkDialect(csv.Dialect):
    """CSV as splunklib writes it for splunkd (``splunklib.searchcommands.internals.CsvDialect``)."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\r\n"
    quoting = csv.QUOTE_MINIMAL


class Chunk:
    """One execute chunk: its metadata, its CSV header, and its records as they are read.

    :meth:`records` yields each record as ``(cells, text)``: the cells padded or cut to the header's
    length, and the record's CSV text as sent (line end removed), or None when the record had a
    different number of cells than the header (its text then does not line up with the header's
    columns). Passing ``text`` through spares re-encoding the cells; the body is read from the
    stream as records are asked for, so :meth:`records` must be read to its end (``Session.chunks``
    does it otherwise) before the next chunk.

    ``replaced`` is True once bytes that could not be read (invalid UTF-8, NUL) were replaced with
    U+FFFD anywhere read so far (checked per record by looking for U+FFFD in it).
    """

    def __init__(self, metadata: Dict[str, Any], body: _BodyParser) -> None:
        self.metadata = metadata
        self._body = body
        self.header = body.header
        self.header_text = body.header_text

    @property
    def finished(self) -> bool:
        return bool(self.metadata.get("finished", False))

    @property
    def replaced(self) -> bool:
        return _replacements[0] > 0

    def records(self) -> Iterator[Tuple[List[str], Optional[str]]]:
        return self._body.records()


def read_chunk(istream: IO[bytes]) -> Optional[Tuple[Dict[str, Any], bytes]]:
    """The next chunk as (metadata, body bytes), or None at the end of the stream."""
    head = read_head(istream)
    if head is None:
        return None
    metadata, body_length = head
    return metadata, _read_exactly(istream, body_length)


def read_head(istream: IO[bytes]) -> Optional[Tuple[Dict[str, Any], int]]:
    """The next chunk's metadata and body length (the body is left in the stream), or None at the end."""
    header = istream.readline()
    if not header:
        return None
    match = HEADER.match(header)
    if match is None:
        raise ProtocolError(f"Failed to parse transport header: {header[:200]!r}")
    metadata_length, body_length = int(match.group(1)), int(match.group(2))
    metadata_bytes = _read_exactly(istream, metadata_length)
    try:
        metadata = json.loads(metadata_bytes.decode("utf-8", _REPLACE_ERRORS)) if metadata_bytes else {}
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"Failed to parse metadata of length {metadata_length}: {error}") from None
    if not isinstance(metadata, dict):
        raise ProtocolError(f"Failed to parse metadata of length {metadata_length}: not an object")
    return metadata, body_length


def _read_exactly(istream: IO[bytes], size: int) -> bytes:
    if size <= 0:
        return b""
    data = istream.read(size)
    if len(data) != size:
        raise ProtocolError(f"stream ended after {len(data)} of {size} bytes")
    return data


def parse_body(body: bytes) -> Tuple[List[str], List[List[str]], bool]:
    """(header, rows, replaced) of a CSV body held in memory; every row padded or cut to the header."""
    parser = _BodyParser(io.BytesIO(body), len(body))
    rows = [cells for cells, _ in parser.records()]
    return parser.header, rows, _replacements[0] > 0


class _BodyParser:
    """A CSV body read from the stream as its records are asked for (never held whole as bytes
    beside its records: a 50,000-record chunk would be held twice), each record with its text.

    Invalid UTF-8 and NUL become U+FFFD: NUL is swapped for 0xFF as it is read, a byte UTF-8 never
    holds, so the decoder replaces both the same way.
    """

    def __init__(self, istream: IO[bytes], size: int) -> None:
        _replacements[0] = 0
        self._body = _BodyReader(istream, max(0, size))
        self._pending: List[str] = []
        self.header: List[str] = []
        self.header_text = ""
        self._reader: Optional[Iterator[List[str]]] = None
        if size <= 0:
            return
        buffered = io.BufferedReader(self._body, 1 << 16)
        text = io.TextIOWrapper(buffered, encoding="utf-8", errors=_REPLACE_ERRORS, newline="")
        self._reader = csv.reader(self._lines(text), dialect=SplunkDialect)
        header = next(self._reader, None)
        if header is None:
            self._reader = None
            return
        self.header = header
        self.header_text = self._take_text()

    def _lines(self, text: Iterable[str]) -> Iterator[str]:
        pending = self._pending
        for line in text:
            pending.append(line)
            yield line

    def _take_text(self) -> str:
        pending = self._pending
        text = pending[0] if len(pending) == 1 else "".join(pending)
        pending.clear()
        return text.rstrip("\r\n")

    def records(self) -> Iterator[Tuple[List[str], Optional[str]]]:
        if self._reader is not None:
            width = len(self.header)
            take = self._take_text
            for cells in self._reader:
                text: Optional[str] = take()
                if len(cells) != width:
                    cells, text = (cells + [""] * width)[:width], None
                yield cells, text
            self._reader = None
        self.drain()

    def drain(self) -> None:
        self._body.drain()


class _BodyReader(io.RawIOBase):
    """The next ``size`` bytes of a stream, NUL bytes read as 0xFF."""

    def __init__(self, istream: IO[bytes], size: int) -> None:
        super().__init__()
        self._in = istream
        self._left = size
        self._size = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._left <= 0:
            return 0
        data = self._in.read(min(len(buffer), self._left))
        if not data:
            raise ProtocolError(f"stream ended after {self._size - self._left} of {self._size} bytes")
        if b"\0" in data:
            data = data.replace(b"\0", b"\xff")
        buffer[: len(data)] = data
        self._left -= len(data)
        return len(data)

    def drain(self) -> None:
        """Read what the CSV reader left (nothing, normally), so the next chunk starts where it should."""
        while self._left > 0:
            data = self._in.read(min(self._left, 1 << 16))
            if not data:
                raise ProtocolError(f"stream ended after {self._size - self._left} of {self._size} bytes")
            self._left -= len(data)


def decode_mv(encoded: str) -> List[str]:
    """The values of an ``__mv_`` cell (``$a$;$b$``)."""
    return [match.replace("$$", "$") for match in _MV_ITEM.findall(encoded)]


_MV_ITEM = re.compile(r"\$((?:\$\$|[^$])*)\$(?:;|$)")


def encode_cells(value: Any) -> Tuple[str, str]:
    """(plain cell, ``__mv_`` cell) for one output value, as splunklib's writer encodes it: a list of
    two or more strings is newline-joined plus ``$a$;$b$``, one item is the item, empty is empty."""
    if isinstance(value, (list, tuple)):
        if not value:
            return "", ""
        if len(value) == 1:
            return str(value[0]), ""
        items = [str(v) for v in value]
        return "\n".join(items), "$" + "$;$".join(v.replace("$", "$$") for v in items) + "$"
    if value is None:
        return "", ""
    return str(value), ""


_NEEDS_QUOTES = re.compile('[",\r\n\x00]')


def csv_cell(value: str) -> str:
    """One cell as the writer encodes it (``QUOTE_MINIMAL``, quoting NUL as Python 3.9's does)."""
    if _NEEDS_QUOTES.search(value) is None:
        return value
    return '"' + value.replace('"', '""') + '"'


def make_safe(cells: Sequence[str]) -> List[str]:
    """``cells`` with whatever UTF-8 cannot encode (lone surrogates) replaced with U+FFFD."""
    return [c.encode("utf-8", _REPLACE_ERRORS).decode("utf-8") for c in cells]


class RecordsWriter:
    """A reply body: CSV rows, encoded to UTF-8 as they are written (kept as byte strings)."""

    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.size = 0
        self.rows = 0
        self._writer = csv.writer(self, dialect=SplunkDialect)

    def write(self, text: str) -> None:  # the csv writer's file interface: one call per row
        data = text.encode("utf-8")
        self.parts.append(data)
        self.size += len(data)

    def write_line(self, text: str) -> bool:
        """Write one row given as CSV text (no line end); False, nothing written, when it cannot
        be encoded as UTF-8."""
        try:
            data = (text + "\r\n").encode("utf-8")
        except UnicodeEncodeError:
            return False
        self.parts.append(data)
        self.size += len(data)
        self.rows += 1
        return True

    def write_start(self, text: str) -> int:
        """Write the start of a row (CSV text) whose end comes later, in its place (:meth:`end_row`);
        the end's slot, or -1 (nothing written) when the text cannot be encoded as UTF-8."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            return -1
        self.parts.append(data)
        self.parts.append(b"")
        self.size += len(data)
        self.rows += 1
        return len(self.parts) - 1

    def end_row(self, slot: int, data: bytes) -> None:
        """The encoded end (line end included) of the row :meth:`write_start` began."""
        self.parts[slot] = data
        self.size += len(data)

    def hold_row(self) -> int:
        """A place for a whole row written later (:meth:`put_row`): its slot."""
        self.parts.append(b"")
        self.rows += 1
        return len(self.parts) - 1

    def put_row(self, slot: int, row: RecordsWriter, *, replace_start: bool = False) -> None:
        """Put the one row written to ``row`` (a writer of its own) in ``slot`` of :meth:`hold_row`;
        with ``replace_start``, in the end slot of :meth:`write_start`, the row replacing its start."""
        if replace_start:
            self.size -= len(self.parts[slot - 1])
            self.parts[slot - 1] = b""
        data = b"".join(row.parts)
        self.parts[slot] = data
        self.size += len(data)

    def write_row(self, cells: Iterable[str]) -> bool:
        """Write one row; False (and nothing written) when a cell cannot be encoded as UTF-8.
        The caller then writes :func:`make_safe` cells, and may say so in the row."""
        try:
            self._writer.writerow(cells)
        except UnicodeEncodeError:
            return False
        self.rows += 1
        return True


def encode_metadata(metadata: Mapping[str, Any]) -> bytes:
    """Compact JSON, ASCII-escaped, ``None`` values left out: what splunklib's writer sends."""
    clean = {name: value for name, value in metadata.items() if value is not None}
    return json.dumps(clean, separators=(",", ":")).encode("ascii") if clean else b""


def write_chunk(ostream: IO[bytes], metadata: Mapping[str, Any], body: Optional[RecordsWriter] = None) -> None:
    """One reply chunk. Like splunklib, nothing at all when both metadata and body are empty."""
    meta = encode_metadata(metadata)
    size = body.size if body is not None else 0
    if not meta and not size:
        return
    ostream.write(b"chunked 1.0,%d,%d\n" % (len(meta), size))
    ostream.write(meta)
    if body is not None:
        ostream.writelines(body.parts)
    ostream.flush()


class Session:
    """The conversation with splunkd: one getinfo exchange, then execute chunks until the end.

    Messages (``write_message``) and metrics (``write_metric``) collect in the inspector of the
    next reply, as splunklib's do.
    """

    def __init__(self, istream: IO[bytes], ostream: IO[bytes]) -> None:
        self.istream = istream
        self.ostream = ostream
        self.inspector: Dict[str, Any] = {}
        self.getinfo: Dict[str, Any] = {}

    @property
    def searchinfo(self) -> Dict[str, Any]:
        info = self.getinfo.get("searchinfo")
        return info if isinstance(info, dict) else {}

    @property
    def args(self) -> List[str]:
        args = self.searchinfo.get("args")
        return [str(a) for a in args] if isinstance(args, list) else []

    def write_message(self, level: str, text: str) -> None:
        self.inspector.setdefault("messages", []).append([level, text])

    def write_metric(self, name: str, value: Any) -> None:
        self.inspector["metric." + name] = value

    def read_getinfo(self) -> None:
        chunk = read_chunk(self.istream)
        if chunk is None:
            raise ProtocolError("Expected getinfo action, not None")
        metadata, body = chunk
        if metadata.get("action") != "getinfo":
            raise ProtocolError(f"Expected getinfo action, not {metadata.get('action')}")
        if body:
            raise ProtocolError("Did not expect data for getinfo action")
        self.getinfo = metadata

    def reply_getinfo(self, configuration: Mapping[str, Any]) -> None:
        self._reply({**configuration, "inspector": self.inspector or None})

    def chunks(self) -> Iterator[Chunk]:
        """The execute chunks, parsed, until splunkd closes the stream."""
        while True:
            head = read_head(self.istream)
            if head is None:
                return
            metadata, body_length = head
            if metadata.get("action") != "execute":
                raise ProtocolError(f"Expected execute action, not {metadata.get('action')}")
            body = _BodyParser(self.istream, body_length)
            yield Chunk(metadata, body)
            for _ in body.records():  # what the command did not read, so the next chunk starts right
                pass

    def reply(self, finished: bool, body: Optional[RecordsWriter] = None) -> None:
        self._reply({"inspector": self.inspector or None, "finished": finished}, body)

    def reply_error(self, text: str, finished: Optional[bool] = True) -> None:
        """An ERROR message in the next reply (which splunkd shows, and ends the search with)."""
        self.write_message("ERROR", text)
        self._reply({"inspector": self.inspector, "finished": finished})

    def _reply(self, metadata: Mapping[str, Any], body: Optional[RecordsWriter] = None) -> None:
        write_chunk(self.ostream, metadata, body)
        self.inspector = {}


def binary_streams() -> Tuple[IO[bytes], IO[bytes]]:
    """stdin and stdout as byte streams (the protocol counts bytes)."""
    return sys.stdin.buffer, sys.stdout.buffer
