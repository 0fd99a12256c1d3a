"""Loopback stand-in for the splunkd REST API the add-on's solnlib/splunklib code calls.

See tests/README.md ("The splunkd stand-in") for what it imitates and what it does not.
"""

from .server import CRED_END_MARK, CRED_SEP, UCC_PLACEHOLDER, Call, SplunkdStandin

__all__ = ["CRED_END_MARK", "CRED_SEP", "UCC_PLACEHOLDER", "Call", "SplunkdStandin"]
