"""The stand-in's accelerated-field pre-selection never changes what a KV store query returns."""

from __future__ import annotations

import random
from pathlib import Path

from tests.harness.splunkd_standin import kvquery
from tests.harness.splunkd_standin.store import Store


def test_prefilter_matches_a_full_scan(tmp_path: Path):
    rng = random.Random(3)
    store = Store(tmp_path / "kv.sqlite")
    store.kv_collection_create("app", "c", {})
    docs = []
    for n in range(300):
        doc = {"_key": f"k{n}", "incident_key": f"t{rng.randint(0, 3)}:{rng.randint(0, 20)}", "n": n}
        if n % 7 == 0:
            doc["alert_key"] = [f"a{rng.randint(0, 9)}", f"a{rng.randint(0, 9)}"]  # multivalue field
        elif n % 3 == 0:
            doc["alert_key"] = f"a{rng.randint(0, 9)}"
        docs.append(doc)
    store.kv_save("app", "c", docs)
    everything = store.kv_all("app", "c")
    for _ in range(200):
        terms = [
            {"incident_key": {"$in": [f"t{rng.randint(0, 3)}:{rng.randint(0, 20)}" for _ in range(rng.randint(1, 5))]}},
            {"alert_key": {"$in": [f"a{rng.randint(0, 9)}" for _ in range(rng.randint(1, 3))]}},
            {"incident_key": f"t0:{rng.randint(0, 20)}"},
        ]
        query = {"$or": rng.sample(terms, rng.randint(1, 3))}
        pairs = kvquery.candidate_values(query)
        assert pairs is not None
        fast = [d for d in store.kv_by_values("app", "c", pairs) if kvquery.matches(d, query)]
        slow = [d for d in everything if kvquery.matches(d, query)]
        assert fast == slow
    assert kvquery.candidate_values({"n": {"$gt": 3}}) is None
    assert kvquery.candidate_values({"$and": [{"n": 1}]}) is None


def test_terms_with_several_conditions_preselect_by_their_in_list(tmp_path: Path):
    # defenderlineage's queries (incident_store.Term): {"incident_key": {"$in": [...]}, "doc_type":
    # ..., "last_update_date_time": {"$gte": ...}}. Pre-selected by the $in list, then evaluated whole.
    rng = random.Random(5)
    store = Store(tmp_path / "kv.sqlite")
    store.kv_collection_create("app", "c", {})
    docs = [
        {
            "_key": f"k{n}",
            "doc_type": rng.choice(["incident", "alert"]),
            "incident_key": f"t:{rng.randint(0, 20)}",
            "alert_key": f"a{rng.randint(0, 30)}",
            "last_update_date_time": f"2026-09-14T10:00:{rng.randint(0, 59):02d}" + rng.choice(["Z", ".5Z"]),
        }
        for n in range(300)
    ]
    for n, doc in enumerate(docs):  # what a string lower bound must not drop, or keep wrongly
        if n % 11 == 0:
            doc["last_update_date_time"] = ["2026-09-14T09:00:00Z", f"2026-09-14T10:00:{n % 60:02d}Z"]
        elif n % 13 == 0:
            doc["last_update_date_time"] = 20260914
        elif n % 17 == 0:
            del doc["last_update_date_time"]
    store.kv_save("app", "c", docs)
    everything = store.kv_all("app", "c")
    for _ in range(200):
        since = {"$gte": f"2026-09-14T10:00:{rng.randint(0, 59):02d}"}
        terms = [
            {"incident_key": {"$in": [f"t:{rng.randint(0, 20)}" for _ in range(3)]}, "doc_type": "incident"},
            {
                "doc_type": "alert",
                "alert_key": {"$in": [f"a{rng.randint(0, 30)}" for _ in range(4)]},
                "last_update_date_time": since,
            },
            {"incident_key": {"$in": [f"t:{rng.randint(0, 20)}"]}, "doc_type": "alert", "last_update_date_time": since},
        ]
        query = {"$or": rng.sample(terms, rng.randint(1, 3))}
        pairs = kvquery.candidate_values(query)
        assert pairs is not None and {pair[0] for pair in pairs} <= {"incident_key", "alert_key"}
        # every term's doc_type and time conditions are pushed down too
        assert [len(pair) - 2 for pair in pairs] == [len(term) - 1 for term in query["$or"]]
        fast = [d for d in store.kv_by_values("app", "c", pairs) if kvquery.matches(d, query)]
        slow = [d for d in everything if kvquery.matches(d, query)]
        assert fast == slow
    assert kvquery.candidate_values({"n": {"$gt": 3}, "m": {"$exists": True}}) is None


def test_in_a_list_of_strings_answers_as_comparing_each_value():
    # The stand-in answers $in over strings from a set (a document missing the field costs no loop
    # over a 10,000-key list); the answer must be the one a compare with each value gives.
    target = ["a", "b"]
    for value in ("a", "c", None, 3, True, ["x", "b"], ["x"], [1, None], [], {"a": 1}):
        doc = {"f": value}
        expected = any(kvquery._eq(value, t) for t in target)
        assert kvquery.matches(doc, {"f": {"$in": target}}) is expected, value
        assert kvquery.matches(doc, {"f": {"$nin": target}}) is not expected, value
    assert kvquery.matches({}, {"f": {"$in": target}}) is False
    assert kvquery.matches({}, {"f": {"$in": [None, "a"]}}) is True  # null matches a missing field
