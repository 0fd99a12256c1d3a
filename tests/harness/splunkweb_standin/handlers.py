"""The add-on's REST handlers, run by a worker process with the add-on's interpreter, as splunkd
runs ``admin_external`` handlers (restmap.conf) in a persistent Python process of their own.

The worker cannot live in the test's own interpreter: the add-on's ``lib/`` (its own requests,
urllib3 1.26, solnlib, splunktaucclib) would shadow the test environment's packages, and splunkd
runs the handlers on 3.9/3.13, not on the test runner's Python.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import threading
from typing import Any, Dict, List, Optional

from ..modinput_runner import SPLUNK_STUB_DIR
from ..pycache import bytecode_env

WORKER = pathlib.Path(__file__).with_name("handler_worker.py")


def admin_external_handlers(addon: pathlib.Path) -> Dict[str, str]:
    """restmap.conf ``[admin_external:<endpoint>]`` stanzas: endpoint name -> handler file."""
    from ..splunkd_standin.server import parse_conf_file

    stanzas = parse_conf_file(addon / "default" / "restmap.conf")
    return {
        name.split(":", 1)[1]: fields["handlerfile"]
        for name, fields in stanzas.items()
        if name.startswith("admin_external:") and fields.get("handlertype") == "python"
    }


class HandlerWorker:
    """One worker process; :meth:`call` is serialised (splunkd hands a persistent handler one
    request at a time). The process stops when :meth:`stop` closes its stdin."""

    def __init__(
        self,
        addon: pathlib.Path,
        python: str,
        splunk_home: pathlib.Path,
        splunkd_uri: str,
        session_key: str,
        timeout: float = 60.0,
    ) -> None:
        self.addon = pathlib.Path(addon)
        self.timeout = timeout
        (splunk_home / "var" / "log" / "splunk").mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(SPLUNK_STUB_DIR),
            "SPLUNK_HOME": str(splunk_home),
            "SPLUNKD_URI": splunkd_uri,
            "SPLUNK_STANDIN_URI": splunkd_uri,
            # splunk.rest.simpleRequest's fallback; handlers get the caller's key with each request
            "SPLUNK_STANDIN_SESSION_KEY": session_key,
            **bytecode_env(),
        }
        self._lock = threading.Lock()
        self.stderr_path = splunk_home / "handler_worker.stderr"
        self._stderr = open(self.stderr_path, "w")  # closed in stop()
        self._proc = subprocess.Popen(
            [python, str(WORKER)],
            cwd=self.addon / "bin",
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.errors: List[Dict[str, Any]] = []

    def call(
        self,
        handler_file: str,
        action: str,
        name: Optional[str],
        data: Dict[str, List[str]],
        session_key: str,
        app: str,
    ) -> Dict[str, Any]:
        request = {
            "handler_file": handler_file,
            "action": action,
            "name": name,
            "data": data,
            "session_key": session_key,
            "app": app,
            "user": "admin",
        }
        with self._lock:
            assert self._proc.stdin is not None and self._proc.stdout is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
            timer = threading.Timer(self.timeout, self._proc.kill)
            timer.start()
            try:
                line = self._proc.stdout.readline()
            finally:
                timer.cancel()
        if not line:
            raise RuntimeError(f"the handler worker died; see {self.stderr_path}")
        answer: Dict[str, Any] = json.loads(line)
        if "error" in answer:
            self.errors.append(answer["error"])
        return answer

    def stop(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._stderr.close()
