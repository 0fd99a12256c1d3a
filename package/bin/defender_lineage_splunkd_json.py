"""splunkd's REST API in JSON, in the app's ``nobody`` namespace, through splunklib alone.

The incident store (``defender_lineage_kvstore``) and the tenants lookup
(``defender_lineage_splunk/tenant_lookup.py``) talk to splunkd the same way: with the session key
splunkd gave (never a login round trip), one timeout, JSON answers, and every failure raised as the
caller's own exception class, with a message an admin can act on and never the session key (it is
only sent in the Authorization header). ``defenderlineage`` imports this module on the search head,
so it needs splunklib only, not solnlib.
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Optional, Type
from urllib.parse import urlsplit

from splunklib import binding, client

OWNER = "nobody"
JSON_HEADERS = [("Content-Type", "application/json")]


class SplunkdJson:
    """One app's REST namespace on one splunkd. ``who`` names the service in error messages ("KV
    store", "splunkd"); ``error`` is the exception class a caller catches; ``name_path`` adds the
    path to an error when one client asks several endpoints."""

    def __init__(
        self,
        session_key: str,
        splunkd_uri: str,
        app: str,
        timeout: Optional[float],
        error: Type[Exception],
        who: str,
        name_path: bool = False,
    ) -> None:
        parts = urlsplit(splunkd_uri or "")
        if not parts.scheme or not parts.hostname:
            raise error(f"splunkd URI is not a URL: {splunkd_uri!r}")
        self.app = app
        self.requests = 0
        self._error = error
        self._who = who
        self._name_path = name_path
        # client.Service makes no request when it is given a token (no login round trip).
        self._service = client.Service(
            token=session_key,
            app=app,
            owner=OWNER,
            autologin=False,
            handler=binding.handler(timeout=timeout),
            scheme=parts.scheme,
            host=parts.hostname,
            port=parts.port or 8089,
        )

    def __repr__(self) -> str:  # never show the session key
        return f"SplunkdJson(app={self.app!r}, who={self._who!r})"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method`` (GET, POST with a JSON body, DELETE) on ``path``: the decoded JSON answer, or
        None for an empty one."""
        self.requests += 1
        where = f" for {path}" if self._name_path else ""
        try:
            if method == "GET":
                response = self._service.get(path, owner=OWNER, app=self.app, **kwargs)
            elif method == "DELETE":
                response = self._service.delete(path, owner=OWNER, app=self.app, **kwargs)
            else:
                response = self._service.post(path, owner=OWNER, app=self.app, headers=JSON_HEADERS, **kwargs)
            text = response.body.read().decode("utf-8")
        except binding.HTTPError as error:
            raise self._error(f"{self._who} answered HTTP {error.status} {error.reason}{where}") from None
        except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, TLS
            raise self._error(f"{self._who} unreachable: {type(error).__name__}: {error}") from None
        try:
            return json.loads(text) if text.strip() else None
        except ValueError:
            raise self._error(f"{self._who} answered{where} with something that is not JSON") from None
