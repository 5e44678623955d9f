"""API tokens for tests: a signing key of the test's own, and tokens of any role.

The same local keys `waybill up` uses (:class:`LocalApiKeys`), in a test's folder::

    keys = api_keys(tmp_path)
    async with running_service(service, **trusting(keys), ...):
        await http.get("/orders", headers=bearer(keys, "viewer"))

Services under test check tokens exactly as in production; nothing is switched off.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from waybill_runtime.security.api_tokens import Role
from waybill_runtime.security.local_api_keys import LocalApiKeys

__all__ = ["api_keys", "bearer", "temporary_api_keys", "trusting"]


def api_keys(folder: Path) -> LocalApiKeys:
    """A signing key and the JWKS that trusts it, in ``folder`` (kept if already there)."""
    return LocalApiKeys.ensure(folder)


def trusting(keys: LocalApiKeys) -> dict[str, Any]:
    """The settings (for ``running_service``) that make a service trust ``keys``."""
    return dict(keys.settings())


@contextlib.contextmanager
def temporary_api_keys() -> Iterator[LocalApiKeys]:
    """:func:`api_keys` in a folder removed afterwards (for helpers without ``tmp_path``)."""
    with tempfile.TemporaryDirectory(prefix="waybill-api-") as folder:
        yield api_keys(Path(folder))


def bearer(
    keys: LocalApiKeys,
    role: Role = "viewer",
    *,
    subject: str | None = None,
    ttl: timedelta = timedelta(hours=1),
) -> dict[str, str]:
    """An ``Authorization`` header with a fresh token of ``role`` (subject ``test-<role>``)."""
    issued = keys.issue(role, subject=subject or f"test-{role}", ttl=ttl)
    return {"Authorization": f"Bearer {issued.token}"}
