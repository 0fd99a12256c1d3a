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
