"""Benchmarks: one bus stage built three ways side by side, then the whole mesh under bursts.

``make bench`` (``python -m tests.bench``) starts one embedded nats-server and
times the wms-bridge "release to warehouse" stage written with raw nats-py,
on the Waybill runtime and on FastStream, then prints each rate and its ratio
to raw nats-py. Then the end-to-end stage (:mod:`tests.bench.e2e`) sends
bursts of orders through the local stack and reports each process's CPU per
order. Importing this package does nothing; the work is in
:func:`tests.bench.run.main`.
"""
