"""tools/bench_tenants.py's goal checks: idle-RSS flatness is judged where the pool is at its full width
(below TENANT_WORKERS tenants a run starts one worker per tenant: the pool's cost, not the tenants'),
and the slow-network idle row has the 60 s goal."""

from __future__ import annotations

from typing import Any, Dict, List

from tools.bench_tenants import report

SINGLE = {"cpu_s": 0.3, "wall_s": 0.4, "requests": 4}


def idle(rss: Dict[int, float]) -> List[Dict[str, Any]]:
    return [
        {"tenants": n, "cpu_s": 1.0, "wall_s": 1.0, "ms_per_poll": 5.0, "peak_rss_mb": mb, "requests_per_tenant": 4}
        for n, mb in rss.items()
    ]


def test_growth_while_the_pool_widens_is_shown_not_counted_against_the_tenants():
    text, missed = report("py", idle({10: 30.0, 100: 33.0, 500: 35.0}), SINGLE, [])
    assert missed == []
    assert "from 10 to 500 tenants: +17%" in text and "from 100 to 500 tenants (the pool at its full" in text


def test_growth_at_full_width_beyond_ten_percent_is_a_missed_goal():
    _, missed = report("py", idle({10: 30.0, 100: 33.0, 500: 37.0}), SINGLE, [])
    assert missed == ["tenants: idle peak RSS +12% from 100 to 500 tenants"]


def test_the_slow_network_idle_cycle_has_the_sixty_second_goal():
    slow = {"tenants": 500, "latency_s": 0.2, "wall_s": 61.0, "cpu_s": 6.0, "peak_rss_mb": 36.0}
    _, missed = report("py", idle({100: 33.0}), SINGLE, [], [slow])
    assert missed == ["tenants: idle cycle 61 s wall at 500 tenants and 0.2 s latency (goal: under 60)"]
