"""The local stack: the embedded nats-server and the child processes of `waybill up`."""
