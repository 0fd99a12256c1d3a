"""Log redaction: no URL's userinfo (``scheme://user:password@host``) ever reaches a log file.

The add-on builds no URL with credentials in it (defender_lineage_core.proxy), but a library's
exception text, an admin's typo or a hostile server's answer can still carry one. The filter is
installed on the add-on's loggers and on their handlers (so records propagated from requests and
urllib3 are covered too); it rewrites the formatted message, and the traceback text, before any
handler formats them.
"""

from __future__ import annotations

import logging
import re

# scheme://<anything up to the last "@" before whitespace, a quote or a bracket>: greedy, so a
# password holding an unquoted "@" or "/" is covered whole. It may hide a path that holds an "@"
# too: in a log line, hiding too much beats showing a password.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s\"'<>]*@")


def redact_userinfo(text: str) -> str:
    return _USERINFO.sub(r"\1***@", text)


class RedactUserinfo(logging.Filter):
    """Replaces the userinfo of every URL in a record's message and traceback with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for the handler to report
            return True
        redacted = redact_userinfo(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_userinfo(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_userinfo(record.stack_info)
        return True


def install_redaction(logger: logging.Logger) -> logging.Logger:
    """Add the filter (once) to ``logger``, its handlers and the root logger's handlers."""
    targets = [logger, *logger.handlers, *logging.getLogger().handlers]
    for target in targets:
        if not any(isinstance(f, RedactUserinfo) for f in target.filters):
            target.addFilter(RedactUserinfo())
    return logger
