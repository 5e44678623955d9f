"""Test-suite wiring: the NATS fixtures come from the runtime's pytest plugin."""

pytest_plugins = ["waybill_runtime.testing.pytest_plugin"]
