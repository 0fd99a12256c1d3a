"""One HTTP exchange with a total deadline and a cap on the decoded body.

requests' ``timeout`` bounds each socket read, not the exchange: a server that sends one byte a
second (with a correct Content-Length) never trips it and keeps a run alive for days. And
requests inflates a gzip body without limit: a 1 MB body that inflates to 1 GiB took the input to
2.1 GB RSS. So the exchange (connect, headers, body) gets at most ``limit`` seconds in all: the
request up to its headers runs on a worker thread the caller waits for, the body is read under a
watchdog timer; past the limit the socket is shut down (a blocked read returns) and
``ExchangeTimeout`` is raised. The body is read raw and inflated here, chunk by
chunk, at most ``PIECE`` bytes of output per zlib call (``max_length``): decompression stops one
byte past ``max_body`` and ``ResponseTooLarge`` is raised, so memory stays near the cap whatever
the compression ratio. The pieces are joined once, at the end (a growing buffer would be copied
as it grows, doubling the peak).

A server that trickles its HEADERS leaves the worker (a daemon thread, without a socket handle yet)
waiting on its own per-read timeout; the caller does not wait for it.
"""

from __future__ import annotations

import http.cookiejar
import socket
import threading
import time
import zlib
from typing import Any, Callable, List, Optional

import requests
import urllib3
from requests.adapters import DEFAULT_POOLBLOCK, DEFAULT_POOLSIZE, HTTPAdapter

from .errors import MalformedResponse, ResponseTooLarge

# Graph caps an advanced hunting answer at 50 MB (a 100,000-row answer of the simulator's rows is
# 45.5 MB); nothing Graph or Entra sends this add-on is larger. 64 MiB leaves room for JSON's margin.
MAX_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024
PIECE = 1024 * 1024  # most output of one zlib call: a 64 kB gzip chunk can inflate to 64 MB


def share_between_tenants(session: requests.Session, connections: int) -> requests.Session:
    """``session`` made fit to carry the requests of every tenant of one run at once.

    Safe to share because a run's tenants use one account: one proxy, one Entra and Graph host, one
    TLS configuration. What is per tenant never lives on the session: the bearer token goes in each
    request's own headers (GraphClient.send_with_token), and cookies are refused altogether, so that
    nothing one tenant's answer sets (Entra sets several) is sent on another tenant's request.
    Each mounted adapter keeps up to ``connections`` idle connections per host (requests keeps 10
    and drops the rest with a warning, which would cost a TCP and TLS set-up each time)."""
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    if connections > DEFAULT_POOLSIZE:
        for adapter in session.adapters.values():
            if isinstance(adapter, HTTPAdapter):  # also the proxy-credentials adapter (proxy.py)
                # Called before the first request: no pooled connection is dropped. Proxy managers
                # created later take the same size (HTTPAdapter keeps it).
                adapter.init_poolmanager(DEFAULT_POOLSIZE, connections, block=DEFAULT_POOLBLOCK)
    return session


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
    before_body: Optional[Callable[[requests.Response], None]] = None,
    **kwargs: Any,
) -> requests.Response:
    """``session.request`` whose answer, body read, arrives within ``limit`` seconds and holds at
    most ``max_body`` bytes once decoded; ``response.content`` is then ready.

    The worker thread only waits for the status line and headers; the body is read here, in the
    caller's thread, under a watchdog timer. So the body's memory is the caller's (glibc gives each
    thread its own arena, and the inputs keep freed memory: a body read on a worker thread cost
    ~7 MB of peak RSS in a backfill).

    ``before_body(response)``: called once the headers are here, before the body is read (the tenant
    pool's page slot, page_slots.py); the time it waits is not the server's, so the body still gets
    what is left of ``limit``."""
    started = time.monotonic()
    exchange = _Headers(session, method, url, read_timeout, kwargs)
    worker = threading.Thread(target=exchange.run, name="http-exchange", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        exchange.abandon()
        raise ExchangeTimeout(f"no answer within {limit:.1f}s")
    if exchange.error is not None:
        raise exchange.error
    response = exchange.response
    assert response is not None
    if before_body is not None:
        waiting = time.monotonic()
        try:
            before_body(response)
        except BaseException:
            response.close()
            raise
        started += time.monotonic() - waiting
    fired = threading.Event()

    def cut() -> None:
        fired.set()
        _shut_down(response)

    watchdog = threading.Timer(max(0.0, limit - (time.monotonic() - started)), cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        response._content = read_body(response, max_body, resource)
    except requests.RequestException:
        if fired.is_set():
            raise ExchangeTimeout(f"no complete answer within {limit:.1f}s") from None
        raise
    finally:
        watchdog.cancel()
    if fired.is_set():  # a body delimited by the connection's end looks whole when cut: refuse it
        raise ExchangeTimeout(f"no complete answer within {limit:.1f}s")
    response._content_consumed = True  # type: ignore[attr-defined]
    return response


class _Headers:
    """``session.request(stream=True)`` on a worker thread: the answer up to its headers."""

    def __init__(self, session: requests.Session, method: str, url: str, read_timeout: float, kwargs: Any) -> None:
        self.session = session
        self.method = method
        self.url = url
        self.read_timeout = read_timeout
        self.kwargs = kwargs
        self.response: Optional[requests.Response] = None
        self.error: Optional[BaseException] = None
        self._lock = threading.Lock()
        self._abandoned = False

    def run(self) -> None:
        try:
            response = self.session.request(
                self.method, self.url, timeout=self.read_timeout, stream=True, **self.kwargs
            )
        except BaseException as exc:  # handed to the waiting caller, which raises it
            self.error = exc
            return
        with self._lock:
            self.response = response
            late = self._abandoned
        if late:  # the caller gave up while the headers were coming: nobody reads this answer
            response.close()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            response = self.response
        if response is not None:
            _shut_down(response)


def _shut_down(response: requests.Response) -> None:
    """Stop a read of ``response``'s body: shut its socket down (close alone does not wake a
    blocked recv in another thread)."""
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
