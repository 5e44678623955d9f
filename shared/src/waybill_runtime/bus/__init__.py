"""The message bus: connection, provisioning, publishing, consuming, dead letters."""
