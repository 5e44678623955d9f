"""Python's garbage collector set for a long-running service.

Reference counting frees almost everything a handler allocates; the cyclic
collector only has to find cycles. With CPython's defaults it ran a young
collection every 700 net allocations of container objects and, every hundred of
those, a full one walking every object the process holds, start-up included
(modules, classes, contracts, the aiohttp app): under a burst about 4 % of each
service's CPU (``perf``, docs/benchmarks.md). A service's start-up objects live
as long as the process, so they are moved out of the collector's sight once the
service has started (``gc.freeze``), and young collections wait for more
allocations. Cycles are still collected, just less often: memory held by
garbage cycles between collections stays small next to a service's heap.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger("waybill.service")

YOUNG_COLLECTION_THRESHOLD = 10_000
"""Net container allocations between young collections (CPython's default: 700)."""


def tune_collector() -> None:
    """Collect young objects less often; older generations keep CPython's ratios."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def freeze_startup_objects() -> None:
    """Leave everything alive now (the started service) out of every later collection."""
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    log.debug("start-up objects left out of garbage collection: %d", gc.get_freeze_count())
