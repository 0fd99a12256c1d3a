"""The incident store's batch_save body: the JSON text, in a form splunklib neither decodes nor changes."""

from __future__ import annotations

import json

from defender_lineage_kvstore import _json_body
from splunklib import binding


def test_the_body_is_the_compact_ascii_json_of_the_documents():
    docs = [{"_key": "alert:t:1:alerts", "title": "Ünïcode <&>"}, {"_key": "k2", "n": ""}]
    body = _json_body(docs)
    assert json.loads(bytes(body)) == docs
    assert bytes(body) == json.dumps(docs, separators=(",", ":")).encode("ascii")
    assert len(body) == len(bytes(body))  # what splunklib's handler sends as Content-Length


def test_splunklib_does_not_decode_it_to_mask_a_debug_line():
    # splunklib's post() runs mask_sensitive_data over every body, whatever the log level: a str
    # body is json-decoded in full there (a second decode of every 1000-document page).
    docs = [{"_key": str(n), "alert_id": str(n)} for n in range(3)]
    body = _json_body(docs)
    assert binding.mask_sensitive_data({"body": body})["body"] is body
    as_text = json.dumps(docs)
    assert binding.mask_sensitive_data({"body": as_text})["body"] == docs  # what a str body costs
