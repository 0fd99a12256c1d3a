"""A real proxy server for the tests: pproxy (PyPI; HTTP CONNECT/forward and SOCKS5, with
username/password authentication), started on 127.0.0.1, bounded in time, stopped by itself.

``connections`` lists what the proxy relayed (``("http" | "socks5", "127.0.0.1:<port>")``, from
pproxy's ``-v`` lines), so a test can prove traffic went through it. ``--auth 0``: pproxy otherwise
remembers an address that authenticated once for 30 days, and a wrong password would then pass.
Its output is kept in memory, not in a file: it names a refused password, and the tests scan
their files for secrets.
"""

from __future__ import annotations

import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Iterator, List, Optional, Tuple

_RELAYED = re.compile(r"^(http|socks5) 127\.0\.0\.1:\d+ -> (\S+)")


def closed_port() -> int:
    """A loopback port nothing listens on (free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_free_port = closed_port


class Refusing407Proxy(BaseHTTPRequestHandler):
    """A proxy that answers every request and CONNECT with 407, recording the Proxy-Authorization
    header it was sent (``seen``, in order)."""

    seen: ClassVar[List[str]] = []

    def _refuse(self) -> None:
        Refusing407Proxy.seen.append(self.headers.get("Proxy-Authorization", ""))
        self.send_response(407, "Proxy Authentication Required")
        self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_CONNECT = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve_refusing_proxy() -> Iterator[int]:
    """Runs :class:`Refusing407Proxy` on 127.0.0.1 for the duration of a fixture; yields its port."""
    Refusing407Proxy.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing407Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def serve_refusing_socks5() -> Iterator[int]:
    """A SOCKS5 server that refuses every username/password as RFC 1929 says: it selects method 2
    (username/password, RFC 1928 section 3), then answers the sub-negotiation with status 1 (failure)
    and closes. Yields its port for the duration of a fixture."""

    class Refuse(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            sock = self.request
            sock.settimeout(5)
            version, count = sock.recv(2)
            methods = sock.recv(count)
            if version != 5 or 2 not in methods:
                sock.sendall(b"\x05\xff")  # no acceptable method
                return
            sock.sendall(b"\x05\x02")
            head = sock.recv(2)  # sub-negotiation version 1, username length
            sock.recv(head[1])
            sock.recv(sock.recv(1)[0])  # password
            sock.sendall(b"\x01\x01")  # failure

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Refuse)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


class PProxy:
    def __init__(
        self, protocols: str = "http+socks5", username: str = "", password: str = "", max_lifetime: float = 300.0
    ) -> None:
        self.protocols = protocols
        self.username = username
        self.password = password
        self.max_lifetime = max_lifetime
        self.port = 0
        self.lines: List[str] = []
        self._process: Optional[subprocess.Popen[str]] = None
        self._timer: Optional[threading.Timer] = None

    def __enter__(self) -> PProxy:
        self.port = _free_port()
        auth = f"#{self.username}:{self.password}" if self.username else ""
        command = [sys.executable, "-m", "pproxy", "-l", f"{self.protocols}://127.0.0.1:{self.port}{auth}"]
        self._process = subprocess.Popen(
            [*command, "--auth", "0", "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self._timer = threading.Timer(self.max_lifetime, self.stop)  # bounded in time, whatever the test does
        self._timer.daemon = True
        self._timer.start()
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pproxy did not start: {self.lines[-5:]}")

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def connections(self) -> List[Tuple[str, str]]:
        found = [_RELAYED.match(line) for line in self.lines]
        return [(m.group(1), m.group(2)) for m in found if m]

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)

    def __exit__(self, *exc: object) -> None:
        self.stop()
