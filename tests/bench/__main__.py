"""``python -m tests.bench``: run the throughput benchmarks (see :mod:`tests.bench.run`)."""

from tests.bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
