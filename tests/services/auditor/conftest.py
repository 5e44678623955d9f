"""The auditor's tests: the store suite's databases (SQLite, and a real PostgreSQL)."""

from tests.services.auditor.databases import audit_url, backend, postgres_server, postgres_url

__all__ = ["audit_url", "backend", "postgres_server", "postgres_url"]
