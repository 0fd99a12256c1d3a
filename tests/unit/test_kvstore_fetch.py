"""The incident store's fetch against the splunkd stand-in: no document is lost when splunkd cuts an
answer at ``max_rows_per_query`` (limits.conf [kvstore]; it says nothing of the rows it left out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import defender_lineage_kvstore
import pytest
from defender_lineage_kvstore import IncidentStoreClient
from splunklib import binding

from defender_lineage_core.incident_store import COLLECTION, Term, alert_key, docs_from_alert, docs_from_incident
from tests.harness.splunkd_standin import SplunkdStandin, api

TENANT = "4a1f0c2e-9b7d-4c3a-8e55-2f6d1b0a9c31"
CAP = 7  # max_rows_per_query, lowered on both sides so a few documents reach it


def _docs(incident: str, alerts: int) -> list:
    docs = docs_from_incident({"id": incident, "tenantId": TENANT, "displayName": incident}, TENANT)
    for n in range(alerts):
        docs += docs_from_alert({"id": f"{incident}-a{n}", "incidentId": incident, "tenantId": TENANT}, TENANT)
    return docs


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(api, "KV_MAX_ROWS_PER_QUERY", CAP)
    monkeypatch.setattr(defender_lineage_kvstore, "MAX_ROWS_PER_QUERY", CAP, raising=False)
    with SplunkdStandin(tmp_path / "splunkd", max_lifetime=60.0) as server:
        yield server


def _store(standin: SplunkdStandin, docs: list) -> IncidentStoreClient:
    standin.kv_save(COLLECTION, docs)
    return IncidentStoreClient(standin.session_key, standin.uri, app=standin.app)


def test_an_answer_cut_at_max_rows_per_query_is_asked_again_in_halves(standin: SplunkdStandin) -> None:
    docs = [d for n in range(4) for d in _docs(str(n), 2)]  # 12 documents, 3 per incident
    client = _store(standin, docs)
    keys = [f"{TENANT}:{n}" for n in range(4)]
    fetched = client.fetch(keys, [alert_key(TENANT, "0-a0")])
    assert sorted(d["_key"] for d in fetched) == sorted({d["_key"] for d in docs})
    assert client.requests == 3  # the cut answer, then each half (each below the cap)


def test_one_key_with_more_documents_than_the_cap_is_read_page_by_page(standin: SplunkdStandin) -> None:
    docs = _docs("big", 15) + _docs("small", 1)  # 16 documents name incident "big"
    client = _store(standin, docs)
    fetched = client.fetch([f"{TENANT}:big"])
    assert sorted(d["_key"] for d in fetched) == sorted(d["_key"] for d in docs if d["incident_key"].endswith(":big"))


def test_an_answer_below_the_cap_is_one_request(standin: SplunkdStandin) -> None:
    client = _store(standin, _docs("1", 5))
    assert len(client.fetch([f"{TENANT}:1"])) == 6 and client.requests == 1


def test_find_answers_what_its_terms_match_and_is_asked_again_in_halves_when_cut(standin: SplunkdStandin) -> None:
    # The stand-in evaluates the Mongo query; Term.matches is what the unit tests' store answers:
    # both must agree, also when an answer was cut at max_rows_per_query and asked again.
    docs = [d for n in range(4) for d in _docs(str(n), 2)]
    docs += docs_from_alert(
        {"id": "0-a0", "incidentId": "9", "tenantId": TENANT, "lastUpdateDateTime": "2026-09-14T10:00:00.5Z"},
        TENANT,
        "incidents",
    )
    client = _store(standin, docs)
    keys = tuple(f"{TENANT}:{n}" for n in range(4))
    cases = [
        [Term(keys, doc_type="incident")],
        [Term(keys, doc_type="alert")],
        [Term(keys[:2], (alert_key(TENANT, "0-a0"),), "alert", "2026-09-14T10:00:00")],
        [Term(keys, doc_type="incident"), Term(alert_keys=(alert_key(TENANT, "1-a1"),))],
        [Term(keys)],  # 12 documents: cut at 7, asked again in halves
    ]
    for terms in cases:
        expected = sorted(d["_key"] for d in docs if any(t.matches(d) for t in terms))
        assert expected, terms
        assert sorted(d["_key"] for d in client.find(terms)) == expected, terms
    assert client.find([Term()]) == []


def test_a_long_query_goes_to_batch_find_in_a_body_splunklib_does_not_decode(
    standin: SplunkdStandin, monkeypatch: pytest.MonkeyPatch
) -> None:
    # splunklib's post() json-decodes a str body to mask a debug line: a batch_find of 2,000 keys and
    # their listed alerts (~0.5 MB) would be decoded once more, in the command's process.
    client = _store(standin, _docs("1", 1))
    decoded: List[int] = []
    original = binding.mask_sensitive_data

    def counting(data: Any) -> Any:  # splunklib's masking recurses through the module's name
        if isinstance(data, str) and len(data) > 1000:
            decoded.append(len(data))
        return original(data)

    monkeypatch.setattr(binding, "mask_sensitive_data", counting)
    keys = tuple(f"{TENANT}:{n}" for n in range(400))  # far above MAX_GET_QUERY_CHARS as JSON
    found = client.find([Term(incident_keys=keys)])
    assert [d["incident_id"] for d in found if d["doc_type"] == "incident"] == ["1"]
    assert any("batch_find" in call.path for call in standin.calls)
    assert decoded == []
