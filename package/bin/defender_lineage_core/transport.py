"""One HTTP exchange with a total deadline and a cap on the decoded body.

requests' ``timeout`` bounds each socket read, not the exchange: a server that sends one byte a
second (with a correct Content-Length) never trips it and keeps a run alive for days. And
requests inflates a gzip body without limit: a 1 MB body that inflates to 1 GiB took the input to
2.1 GB RSS. So the exchange (connect, headers, body) runs on a worker thread that the caller
waits for at most ``limit`` seconds; past that the worker's socket is shut down (it stops at its
next read) and ``ExchangeTimeout`` is raised. The body is read raw and inflated here, chunk by
chunk, at most ``PIECE`` bytes of output per zlib call (``max_length``): decompression stops one
byte past ``max_body`` and ``ResponseTooLarge`` is raised, so memory stays near the cap whatever
the compression ratio. The pieces are joined once, at the end (a growing buffer would be copied
as it grows, doubling the peak).

A server that trickles its HEADERS leaves the worker (a daemon thread, without a socket handle yet)
waiting on its own per-read timeout; the caller does not wait for it.
"""

from __future__ import annotations

import socket
import threading
import zlib
from typing import Any, List, Optional

import requests
import urllib3

from .errors import MalformedResponse, ResponseTooLarge

# Graph caps an advanced hunting answer at 50 MB (a 100,000-row answer of the simulator's rows is
# 45.5 MB); nothing Graph or Entra sends this add-on is larger. 64 MiB leaves room for JSON's margin.
MAX_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024
PIECE = 1024 * 1024  # most output of one zlib call: a 64 kB gzip chunk can inflate to 64 MB


class ExchangeTimeout(requests.Timeout):
    """The whole exchange outlasted its total deadline (each read may have been quick)."""


def bounded_exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    read_timeout: float,
    limit: float,
    max_body: int = MAX_BODY_BYTES,
    resource: str = "",
    **kwargs: Any,
) -> requests.Response:
    """``session.request`` whose answer, body read, arrives within ``limit`` seconds and holds at
    most ``max_body`` bytes once decoded; ``response.content`` is then ready."""
    exchange = _Exchange(session, method, url, read_timeout, max_body, resource, kwargs)
    worker = threading.Thread(target=exchange.run, name="http-exchange", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        exchange.abandon()
        raise ExchangeTimeout(f"no complete answer within {limit:.1f}s")
    if exchange.error is not None:
        raise exchange.error
    assert exchange.result is not None
    return exchange.result


class _Exchange:
    def __init__(
        self,
        session: requests.Session,
        method: str,
        url: str,
        read_timeout: float,
        max_body: int,
        resource: str,
        kwargs: Any,
    ) -> None:
        self.session = session
        self.method = method
        self.url = url
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.resource = resource
        self.kwargs = kwargs
        self.response: Optional[requests.Response] = None  # once the headers are in
        self.result: Optional[requests.Response] = None  # once the body is read
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            response = self.session.request(
                self.method, self.url, timeout=self.read_timeout, stream=True, **self.kwargs
            )
            self.response = response
            response._content = read_body(response, self.max_body, self.resource)
            response._content_consumed = True  # type: ignore[attr-defined]
            self.result = response
        except BaseException as exc:  # handed to the waiting caller, which raises it
            self.error = exc

    def abandon(self) -> None:
        """Stop the worker's reading: shut its socket down (close alone does not wake a blocked recv)."""
        response = self.response
        if response is None:
            return
        raw = response.raw
        sock = getattr(getattr(raw, "connection", None) or getattr(raw, "_connection", None), "sock", None)
        if sock is None:  # http.client's socket file: HTTPResponse.fp -> BufferedReader -> SocketIO
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        if isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def read_body(response: requests.Response, max_body: int, resource: str = "") -> bytes:
    """The body, inflated here (gzip, deflate or none) and never past ``max_body`` bytes."""
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    inflater = _Inflater(encoding, resource, response.status_code)
    out = _Pieces()
    received = 0
    try:
        while True:
            try:
                chunk = response.raw.read(READ_CHUNK, decode_content=False)
            except urllib3.exceptions.ReadTimeoutError as exc:
                raise requests.exceptions.ReadTimeout(exc) from None
            except (urllib3.exceptions.ProtocolError, OSError) as exc:
                raise requests.exceptions.ChunkedEncodingError(exc) from None
            if not chunk:
                break
            received += len(chunk)
            inflater.write(chunk, out, max_body)
            if out.size > max_body:
                raise ResponseTooLarge(
                    f"{resource or 'the request'}: the answer (HTTP {response.status_code}) is larger than "
                    f"{max_body // (1024 * 1024)} MiB once decompressed; reading stopped there and it was refused "
                    "(no Graph or Entra answer is that large); the cursor stays.",
                    status=response.status_code,
                    resource=resource,
                )
        declared = (response.headers.get("Content-Length") or "").strip()
        if declared.isdigit() and received < int(declared):
            # The connection closed before the whole body arrived (urllib3 1.x does not check).
            raise requests.exceptions.ChunkedEncodingError("the body is shorter than its Content-Length")
    except BaseException:
        response.close()
        raise
    response.raw.release_conn()
    return b"".join(out.parts)


class _Pieces:
    def __init__(self) -> None:
        self.parts: List[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)


class _Inflater:
    """Content-Encoding undone with a bound on the output (zlib ``max_length``)."""

    def __init__(self, encoding: str, resource: str, status: int) -> None:
        if encoding in ("gzip", "x-gzip"):
            self.wbits: Optional[int] = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self.wbits = zlib.MAX_WBITS  # zlib-wrapped, as RFC 9110 says; raw deflate is tried if that fails
        elif encoding in ("identity", ""):
            self.wbits = None
        else:
            raise MalformedResponse(
                f"{resource or 'the request'}: the answer (HTTP {status}) uses Content-Encoding {encoding!r}, which "
                "this add-on does not ask for; check whether a proxy rewrites the traffic.",
                status=status,
                resource=resource,
            )
        self.resource = resource
        self.status = status
        self.started = False
        self.decoder = zlib.decompressobj(self.wbits) if self.wbits is not None else None

    def write(self, data: bytes, out: _Pieces, max_body: int) -> None:
        if self.decoder is None:
            out.write(data)
            return
        while data and out.size <= max_body:
            try:
                piece = self.decoder.decompress(data, min(PIECE, max_body - out.size + 1))
            except zlib.error as exc:
                if not self.started and self.wbits == zlib.MAX_WBITS:
                    self.wbits = -zlib.MAX_WBITS  # a server sending raw deflate
                    self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise MalformedResponse(
                    f"{self.resource or 'the request'}: the answer (HTTP {self.status}) could not be decompressed "
                    f"({exc}).",
                    status=self.status,
                    resource=self.resource,
                ) from None
            self.started = True
            out.write(piece)
            if self.decoder.eof:
                data = self.decoder.unused_data  # a gzip stream may hold several members
                if data:
                    self.decoder = zlib.decompressobj(self.wbits or zlib.MAX_WBITS)
            else:
                data = self.decoder.unconsumed_tail
