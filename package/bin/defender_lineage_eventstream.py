"""The modular inputs' XML event stream: one event per Graph item version.

Kept apart from the Splunk configuration adapter so it depends on splunklib's EventWriter only.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Dict, List, Optional
from xml.sax.saxutils import escape

from splunklib import modularinput as smi

from defender_lineage_core.collector import Version
from defender_lineage_core.timestamps import epoch_seconds, now_ticks

# splunkd reads one XML stream from the process's stdout. When several tenants are collected at once,
# each page is written (and the stream opened) under this lock, so pages never interleave: a page is
# whole on stdout before its cursor is saved (page_commits.py), whichever tenant wrote it.
STREAM_LOCK = threading.Lock()


def write_page(writer: smi.EventWriter, text: str) -> None:
    """One page of rendered events to splunkd: one write and one flush, never interleaved."""
    with STREAM_LOCK:
        start_stream(writer)
        writer._out.write(text)
        writer._out.flush()


class EventSink:
    """Writes each item version as one event, ``_time`` from ``lastUpdateDateTime``.

    The XML is the same, byte for byte, as splunklib's ``Event.write_to`` (a test holds it to
    that), but built as one string per page and written with one flush: ElementTree per event
    cost more than everything else in a backfill together.
    """

    def __init__(self, writer: smi.EventWriter, index: str, sourcetype: str, source: str) -> None:
        self.writer = writer
        self.tail = (
            f"<source>{xml_text(source)}</source><sourcetype>{xml_text(sourcetype)}</sourcetype>"
            f"<index>{xml_text(index)}</index>"
        )

    def __call__(self, batch: List[Version]) -> None:
        self.write(self.render(batch))

    def render(self, batch: List[Version]) -> str:
        """The page's events as one XML string (CPU only: nothing is written yet)."""
        fallback = epoch_seconds(now_ticks())
        tail = self.tail
        return "".join(
            [
                f'<event unbroken="1"><time>{epoch_seconds(v.ticks) if v.ticks is not None else fallback}</time>'
                f"{tail}<data>{xml_text(event_text(v.item, v.text))}</data><done /></event>"
                for v in batch
            ]
        )

    def write(self, text: str) -> None:
        """Write rendered events to splunkd, in one write and one flush."""
        write_page(self.writer, text)


# Linux's fcntl command for a pipe's capacity (``fcntl.F_SETPIPE_SZ`` from Python 3.10 on).
F_SETPIPE_SZ = 1031
PIPE_CAPACITY = 1 << 20


def start_stream(writer: smi.EventWriter) -> None:
    """Open the ``<stream>`` once, on a pipe to splunkd made large enough for a page of events.

    A page of 1,000 alerts is ~3 MB of XML; through Linux's default 64 KB pipe every 64 KB is one
    wake-up of the input and of its reader (~12 ms of blocked writing a page here; ~8 ms with a 1 MB
    pipe). Best effort: on another system, or when stdout is not a pipe, nothing changes.
    """
    if writer.header_written:
        return
    enlarge_pipe(writer._out)
    writer._out.write("<stream>")
    writer.header_written = True


def enlarge_pipe(stream: Any, capacity: int = PIPE_CAPACITY) -> None:
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), F_SETPIPE_SZ, capacity)
    except (ImportError, AttributeError, ValueError, OSError):  # not Linux, not a pipe, or over the limit
        pass


def event_text(item: Dict[str, Any], graph_text: Optional[str] = None) -> str:
    """The Graph object as single-line JSON, safe inside XML 1.0 and UTF-8: Graph's own text when
    it is already that, else the object serialised compactly."""
    if graph_text is not None and "\n" not in graph_text and "\r" not in graph_text and _xml_safe(graph_text):
        return graph_text
    text = json.dumps(item, ensure_ascii=False, separators=(",", ":"))
    if not _xml_safe(text):
        # Lone surrogates and U+FFFE/U+FFFF cannot travel in UTF-8 XML; as JSON escapes they
        # mean the same to a JSON reader.
        text = json.dumps(item, ensure_ascii=True, separators=(",", ":"))
    return text


def xml_text(text: str) -> str:
    """XML character data as splunklib writes it: escaped, and ASCII with character references,
    so the stream is right whatever encoding the interpreter gives stdout."""
    # Most events hold none of the three: looking costs a tenth of escape()'s three replace passes.
    escaped = escape(text) if ("<" in text or ">" in text or "&" in text) else text
    return escaped if escaped.isascii() else escaped.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _xml_safe(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\ufffe" not in text and "\uffff" not in text
