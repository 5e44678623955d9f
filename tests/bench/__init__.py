"""Throughput benchmarks: one stage built three ways, measured side by side in one run.

``make bench`` (``python -m tests.bench``) starts one embedded nats-server and
times the wms-bridge "release to warehouse" stage written with raw nats-py,
on the Waybill runtime and on FastStream, then prints each rate and its ratio
to raw nats-py. Importing this package does nothing; the work is in
:func:`tests.bench.run.main`.
"""
