"""The HTTP request loop the splunkd and Splunk Web stand-ins share.

Each request's body is read whole (Content-Length), the stand-in answers it (``answer``), and the
answer goes out with its Content-Type and Content-Length plus the stand-in's own headers
(``answer_headers``). Nothing is logged: request headers carry session keys and cookies.
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from typing import Any, Dict, Iterable, Protocol, Tuple


class Reply(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def content_type(self) -> str: ...


class StandinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the
    # client's delayed ACK of the headers (~40 ms a request on Linux), which splunkd does not do.
    disable_nagle_algorithm = True
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # quiet, and never log headers
        return

    def answer(self, headers: Dict[str, str], body: bytes) -> Reply:
        """The stand-in's answer to ``self.command`` ``self.path`` (``headers`` lower-cased)."""
        raise NotImplementedError

    def answer_headers(self, headers: Dict[str, str], reply: Reply) -> Iterable[Tuple[str, str]]:
        """Headers sent after Content-Type and Content-Length."""
        return ()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.answer(headers, body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for key, value in self.answer_headers(headers, reply):
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(reply.body)

    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PUT = _serve
