"""Peak memory of a stage: what Python's heap held at its worst during a round.

Measured with ``tracemalloc`` in a round of its own (tracing slows every
allocation, so it never runs in a timed round): tracing starts as the stage
starts, and the peak of what was allocated since, and not yet freed, is the
stage's footprint for that load. The harness's polling is counted in every
stage alike.
"""

from __future__ import annotations

import tracemalloc
from types import TracebackType

MIB = 1024 * 1024


class HeapPeak:
    """A meter for :func:`tests.bench.harness.run_round`: the peak heap growth, in bytes."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._base = 0

    def __enter__(self) -> HeapPeak:
        tracemalloc.start()
        tracemalloc.reset_peak()
        self._base = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        self.peak_bytes = max(0, peak - self._base)

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / MIB
