"""Checkpoint size for a dense overlap: the collector of a package tree over an in-memory listing.

    .venv/bin/python tools/checkpoint_size.py [package/bin] [versions]

120,000 alert versions 0.5 ms apart (all inside the 120-second overlap), read in pages of 1000 as
the alerts input reads them; prints the largest checkpoint saved and the total written over the
run. Give another tree (e.g. ``git archive <commit> package/bin | tar -x -C /tmp/old``) to compare.
"""

from __future__ import annotations

import bisect
import json
import sys
from typing import Any, Dict, Iterator, List, Optional


def main(tree: str = "package/bin", count: int = 120_000) -> None:
    sys.path.insert(0, tree)
    from defender_lineage_core.collector import ALERTS, Collection, CursorState
    from defender_lineage_core.graph_client import Page
    from defender_lineage_core.timestamps import format_instant, parse_instant

    start = parse_instant("2026-11-20T00:00:00Z") or 0
    ticks = [start + n * 5000 for n in range(count)]
    items = [
        {"id": f"da63{n:016d}_-{(n * 7919) % 1_000_000_000:010d}", "lastUpdateDateTime": format_instant(t)}
        for n, t in enumerate(ticks)
    ]

    class Listing:
        """``lastUpdateDateTime ge X``, ascending, 1000 a page, as Graph answers the collector."""

        def resource_url(self, resource: str) -> str:
            return "https://graph.test/v1.0/security/" + resource

        def pages(self, resource: str, params: Dict[str, str], follow: Any = None, **_: Any) -> Iterator[Any]:
            while True:
                since = parse_instant(params["$filter"].split(" ge ")[1].split(" ")[0]) or 0
                first = bisect.bisect_left(ticks, since)
                chunk = items[first : first + 1000]
                page = Page(list(chunk), "https://graph.test/next" if first + 1000 < count else None)
                following: Optional[Any] = follow(page) if follow else None
                yield page
                if following is None or following[1] is None:
                    return
                params = following[1]

    sizes: List[int] = []
    state = CursorState("tenant")
    collection = Collection(
        Listing(),  # type: ignore[arg-type]
        ALERTS,
        state,
        lambda batch: None,
        lambda saved: sizes.append(len(json.dumps(saved.to_json()))),
        start_ticks=start,
    )
    collection.run()
    print(
        f"{tree}: {count:,} versions, {len(sizes)} saves, largest checkpoint {max(sizes):,} bytes, "
        f"{len(state.recent):,} versions remembered, {sum(sizes) / 1e6:.1f} MB saved over the run"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "package/bin", int(sys.argv[2]) if len(sys.argv) > 2 else 120_000)
