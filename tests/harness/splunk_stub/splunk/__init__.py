"""Test-only stand-in for Splunk's bundled ``splunk`` package (only what solnlib/splunktaucclib import)."""

from __future__ import annotations

import os
from typing import Any, List, Optional


class RESTException(Exception):
    def __init__(self, statusCode: int, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(f"[HTTP {statusCode}] {msg or ''}".strip())
        self.statusCode = statusCode
        self.msg = msg
        self.extendedMessages: List[Any] = list(extendedMessages or [])

    def get_extended_message_text(self) -> str:
        return str(self.msg or "")


class BadRequest(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(400, msg, extendedMessages)


class AuthenticationFailed(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(401, msg, extendedMessages)


class LicenseRestriction(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(402, msg, extendedMessages)


class AuthorizationFailed(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(403, msg, extendedMessages)


class ResourceNotFound(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None, resourceInfo: Any = None) -> None:
        super().__init__(404, msg, extendedMessages)
        self.resourceInfo = resourceInfo


class InternalServerError(RESTException):
    def __init__(self, msg: Optional[str] = None, extendedMessages: Any = None) -> None:
        super().__init__(500, msg, extendedMessages)


class SplunkdConnectionException(Exception):
    pass


def getSessionKey() -> str:
    """The session key of the current Splunk context: here, ``$SPLUNK_STANDIN_SESSION_KEY``."""
    key = os.environ.get("SPLUNK_STANDIN_SESSION_KEY")
    if not key:
        raise AuthenticationFailed("No session key: SPLUNK_STANDIN_SESSION_KEY is not set")
    return key
