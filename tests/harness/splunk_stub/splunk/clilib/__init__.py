"""Test-only stand-in for ``splunk.clilib``."""
