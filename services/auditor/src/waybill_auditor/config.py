"""The auditor's settings: where the audit database lives, when an order counts as stuck.

Every field is read from ``WAYBILL_<FIELD>`` (``WAYBILL_AUDIT_DB``,
``WAYBILL_AUDIT_DATABASE_URL``, ``WAYBILL_STUCK_AFTER_S``,
``WAYBILL_MASK_PERSONAL_DATA``, ``WAYBILL_AUDIT_SYNC_ALWAYS``) on top of the
runtime's own settings; the database URL, a secret, also from the file of that name in
``WAYBILL_SECRETS_DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from waybill_auditor.stages import DEFAULT_STUCK_AFTER_S, FINAL, Stage
from waybill_runtime.settings import SECRET, RuntimeSettings

AUDIT_DB_FILE = Path("auditor") / "audit.sqlite"
"""Where the database goes under the state folder when WAYBILL_AUDIT_DB is not set."""


class AuditorSettings(RuntimeSettings, frozen=True, kw_only=True):
    """Settings of the auditor (on top of the runtime's own)."""

    audit_db: Annotated[
        str | None,
        msgspec.Meta(
            description="SQLite file of the audit trail; empty = <WAYBILL_STATE_DIR>/"
            "auditor/audit.sqlite",
            extra={"expected": "a file path (its folder is created), or empty for the default"},
        ),
    ] = None
    audit_database_url: Annotated[
        str | None,
        msgspec.Meta(
            description="PostgreSQL database of the audit trail (postgresql://user:password@host/"
            "db), for several auditor replicas; empty = the SQLite file (WAYBILL_AUDIT_DB)",
            extra={"expected": "a postgresql:// URL, or empty for SQLite"},
        ),
        SECRET,
    ] = None
    stuck_after_s: Annotated[
        dict[Stage, Annotated[float, msgspec.Meta(gt=0)]],
        msgspec.Meta(
            description="Seconds an order may stay in a stage before it counts as stuck, as a "
            'JSON object by stage, e.g. {"accepted": 3600}; stages not named keep their default',
            extra={"expected": 'a JSON object of stage to seconds, e.g. {"accepted": 3600}'},
        ),
    ] = {}
    product_sync_stuck_after_s: Annotated[
        float,
        msgspec.Meta(
            gt=0,
            description="Seconds a product sync run under way may go without a page read or "
            "answered before the control tower shows it stuck",
        ),
    ] = 1800.0
    audit_sync_always: Annotated[
        bool,
        msgspec.Meta(
            description="SQLite: wait for the disk at every commit (synchronous=FULL), so audit "
            "rows survive a power loss of the host, not only a crash of the auditor; as "
            "nats-server's sync_interval: always (waybill up --sync-always). Costs CPU per commit"
        ),
    ] = False
    mask_personal_data: Annotated[
        bool,
        msgspec.Meta(
            description="Mask names, emails, phones and addresses in what the HTTP API returns "
            "(the database keeps the bodies as sent)"
        ),
    ] = True

    audit_retention_days: Annotated[
        float | None,
        msgspec.Meta(
            description="Forget messages older than this many days, and orders nothing new was "
            "seen about for as long (checked hourly); empty = keep everything",
            extra={"expected": "a number of days above 0, e.g. 90, or empty"},
        ),
    ] = None
    trace_url_template: Annotated[
        str | None,
        msgspec.Meta(
            description="Link from an order's page to its trace in a tracing UI: a URL with "
            "{trace_id}, e.g. http://127.0.0.1:16686/trace/{trace_id} (Jaeger) or "
            "https://grafana.example/explore?...{trace_id}...; empty = no link",
            extra={"expected": "an http(s) URL containing {trace_id}"},
        ),
    ] = None

    def __post_init__(self) -> None:
        days = self.audit_retention_days
        if days is not None and days <= 0:
            raise ValueError(
                f"WAYBILL_AUDIT_RETENTION_DAYS={days:g} is not a retention: give a number of days "
                "above 0, or leave it empty to keep everything"
            )
        url = self.audit_database_url
        if url and not url.startswith(("postgresql://", "postgres://")):
            # The value may hold a password: the message names the scheme only.
            raise ValueError(
                "WAYBILL_AUDIT_DATABASE_URL is not a PostgreSQL URL: give postgresql://user:"
                "password@host:5432/database, or leave it empty for the SQLite file"
            )
        template = self.trace_url_template
        if template and (
            "{trace_id}" not in template or not template.startswith(("http://", "https://"))
        ):
            raise ValueError(
                f"WAYBILL_TRACE_URL_TEMPLATE={template!r} is not a trace link: give an http(s) "
                "URL containing {trace_id}"
            )
        final = sorted(stage.value for stage in self.stuck_after_s if stage in FINAL)
        if final:
            raise ValueError(
                f"WAYBILL_STUCK_AFTER_S names final stage(s) {', '.join(final)}: an order "
                "cannot be stuck in a final stage, remove them"
            )

    def database_path(self) -> Path:
        """The audit database file these settings name."""
        if self.audit_db:
            return Path(self.audit_db)
        return Path(self.state_dir) / AUDIT_DB_FILE

    def deadlines(self) -> dict[Stage, float]:
        """How long each stage may last before an order in it is stuck (defaults + overrides)."""
        return {**DEFAULT_STUCK_AFTER_S, **self.stuck_after_s}
