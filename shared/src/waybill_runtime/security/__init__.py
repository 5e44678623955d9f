"""NATS identities and permissions: one nkey user per service, permissions from declarations."""
