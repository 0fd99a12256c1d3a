"""Splunk Web stand-in: the built add-on's UCC pages, with its REST handlers running behind them."""

from .server import SplunkWebStandin

__all__ = ["SplunkWebStandin"]
