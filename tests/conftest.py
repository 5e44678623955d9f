"""Test-suite wiring: the NATS fixtures come from the runtime's pytest plugin, the TLS ones
from its TLS fixture module."""

pytest_plugins = ["waybill_runtime.testing.pytest_plugin", "waybill_runtime.testing.tls"]
