"""How each sandbox is started in a local stack, and what it offers the services that use it.

`waybill up` and the test mesh read these declarations through the
``waybill.sandboxes`` entry-point group; they know no sandbox by name. A
sandbox stands in for one or more partners (``odoo``, ``carrier-a``, ...):
the partner names the services' declarations use. For each partner it
*offers* values (``url``, ``api_key``, ``webhook_secret``, ...) that the
services' partner settings are filled from, and it is told where to post
its webhooks. Secrets (keys, webhook secrets, a webhook URL holding a token)
reach the sandbox process through its environment (:data:`SECRET_ENV`), never
its command line, which every local user can read in ``ps``.

This package does not depend on Waybill's runtime: the plan it is handed is
described by the :class:`LocalPlan` protocol below, and the runtime's plan
satisfies it.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from waybill_sandboxes.odoo.versions import SUPPORTED_VERSIONS

__all__ = ["SANDBOXES", "SECRET_ENV", "LocalPlan", "SandboxDeclaration"]

SECRET_ENV = {
    "odoo.webhook_url": "WAYBILL_SANDBOX_ODOO_WEBHOOK_URL",
    "odoo.admin_password": "WAYBILL_SANDBOX_ODOO_ADMIN_PASSWORD",
    "odoo.admin_api_key": "WAYBILL_SANDBOX_ODOO_ADMIN_API_KEY",
    "wms.api_key": "WAYBILL_SANDBOX_WMS_API_KEY",
    "wms.webhook_secret": "WAYBILL_SANDBOX_WMS_WEBHOOK_SECRET",
    "carrier-a.api_key": "WAYBILL_SANDBOX_CARRIER_A_API_KEY",
    "carrier-a.webhook_secret": "WAYBILL_SANDBOX_CARRIER_A_WEBHOOK_SECRET",
    "carrier-b.api_key": "WAYBILL_SANDBOX_CARRIER_B_API_KEY",
    "carrier-b.webhook_secret": "WAYBILL_SANDBOX_CARRIER_B_WEBHOOK_SECRET",
    "mail.webhook_secret": "WAYBILL_SANDBOX_MAIL_WEBHOOK_SECRET",
}
"""The environment variables the sandbox commands read their secrets from (the command-line
options stay for a person at a terminal)."""


class LocalPlan(Protocol):
    """What the local stack has decided for a sandbox: its host, ports, secrets, webhook targets."""

    @property
    def host(self) -> str: ...

    def port(self, sandbox: str, name: str) -> int: ...

    def secret(self, sandbox: str, name: str) -> str: ...

    def webhook_url(self, partner: str) -> str | None:
        """Where the partner's webhooks go (None: no service takes them)."""
        ...


@dataclass(frozen=True)
class SandboxDeclaration:
    """One sandbox process of the local stack."""

    name: str
    """The `waybill sandbox` subcommand (and the process's name)."""
    title: str
    partners: tuple[str, ...]
    """The partners it stands in for."""
    ports: tuple[str, ...]
    """Named ports it listens on; the first is waited for before the services start."""
    arguments: Callable[[LocalPlan], list[str]]
    """Its arguments after ``python -m waybill_sandboxes`` (never a secret)."""
    offers: Callable[[LocalPlan], dict[str, dict[str, str]]]
    """Per partner, the values the services' partner settings are made from."""
    pages: Callable[[LocalPlan], dict[str, str]] = lambda plan: {}
    """What to print for a person to look at."""
    new_secrets: Callable[[], dict[str, str]] = dict
    """Fresh secrets for one run: nothing local is ever mistaken for a real key."""
    secret_environment: Callable[[LocalPlan], dict[str, str]] = lambda plan: {}
    """Its secrets, by the :data:`SECRET_ENV` variable the sandbox reads each from."""
    module: str = field(default="waybill_sandboxes")

    def argv(self, plan: LocalPlan) -> list[str]:
        return [sys.executable, "-m", self.module, self.name, *self.arguments(plan)]

    def environment(self, plan: LocalPlan) -> dict[str, str]:
        return self.secret_environment(plan)


def _url(plan: LocalPlan, sandbox: str, port: str) -> str:
    return f"http://{plan.host}:{plan.port(sandbox, port)}"


def _webhook_args(flag: str, url: str | None) -> list[str]:
    return [] if url is None else [flag, url]


# -- Odoo -------------------------------------------------------------------------------

ODOO_VERSION = "17"
"""The Odoo version a local stack runs by default (the sandbox speaks 16 to 19)."""

ODOO_VERSION_ENV = "WAYBILL_SANDBOX_ODOO_VERSION"
"""Chooses the Odoo version of the local stack (``make demo`` on each of 16-19)."""


def odoo_version() -> str:
    """The Odoo version the local stack runs: ``$WAYBILL_SANDBOX_ODOO_VERSION``, else 17."""
    chosen = os.environ.get(ODOO_VERSION_ENV, "").strip() or ODOO_VERSION
    supported = [str(v) for v in SUPPORTED_VERSIONS]
    if chosen not in supported:
        raise ValueError(
            f"{ODOO_VERSION_ENV}={chosen!r} is not an Odoo version the sandbox speaks: "
            f"choose one of {', '.join(supported)}"
        )
    return chosen


def _odoo_offers(plan: LocalPlan) -> dict[str, dict[str, str]]:
    return {
        "odoo": {
            "url": _url(plan, "odoo", "http"),
            "db": "waybill",
            "login": "admin",
            "password": plan.secret("odoo", "admin_password"),
            "api_key": plan.secret("odoo", "admin_api_key"),
            "webhook_token": plan.secret("odoo", "webhook_token"),
        }
    }


def _odoo_arguments(plan: LocalPlan) -> list[str]:
    return [
        "--host",
        plan.host,
        "--port",
        str(plan.port("odoo", "http")),
        "--version",
        odoo_version(),
        "--orders",
        "0",
    ]


def _odoo_environment(plan: LocalPlan) -> dict[str, str]:
    environment = {
        SECRET_ENV["odoo.admin_password"]: plan.secret("odoo", "admin_password"),
        SECRET_ENV["odoo.admin_api_key"]: plan.secret("odoo", "admin_api_key"),
    }
    # The URL ends in the gateway's secret token: it is a secret itself.
    url = plan.webhook_url("odoo")
    if url is not None:
        environment[SECRET_ENV["odoo.webhook_url"]] = url
    return environment


ODOO = SandboxDeclaration(
    name="odoo",
    title="Odoo sandbox",
    partners=("odoo",),
    ports=("http",),
    new_secrets=lambda: {
        "webhook_token": secrets.token_urlsafe(16),
        "admin_password": secrets.token_urlsafe(12),
        # Odoo's API keys are 40 hex characters (res.users.apikeys); JSON-2 needs one.
        "admin_api_key": secrets.token_hex(20),
    },
    offers=_odoo_offers,
    arguments=_odoo_arguments,
    secret_environment=_odoo_environment,
    pages=lambda plan: {
        "Odoo sandbox": f"{_url(plan, 'odoo', 'http')}  (db waybill, user admin)",
        "Odoo deliveries": f"{_url(plan, 'odoo', 'http')}/_sandbox/odoo/pickings",
    },
)

# -- the warehouse ----------------------------------------------------------------------------


def _wms_arguments(plan: LocalPlan) -> list[str]:
    return [
        "--host",
        plan.host,
        "--port",
        str(plan.port("wms", "http")),
        *_webhook_args("--webhook-url", plan.webhook_url("wms")),
        "--stage-delay",
        "1",
    ]


WMS = SandboxDeclaration(
    name="wms",
    title="WMS sandbox",
    partners=("wms",),
    ports=("http",),
    new_secrets=lambda: {
        "api_key": "wms-" + secrets.token_hex(8),
        "webhook_secret": secrets.token_hex(16),
    },
    offers=lambda plan: {
        "wms": {
            "url": _url(plan, "wms", "http"),
            "api_key": plan.secret("wms", "api_key"),
            "webhook_secret": plan.secret("wms", "webhook_secret"),
        }
    },
    arguments=_wms_arguments,
    secret_environment=lambda plan: {
        SECRET_ENV["wms.api_key"]: plan.secret("wms", "api_key"),
        SECRET_ENV["wms.webhook_secret"]: plan.secret("wms", "webhook_secret"),
    },
    pages=lambda plan: {"WMS sandbox": _url(plan, "wms", "http")},
)

# -- carriers -------------------------------------------------------------------------------

CARRIER_A, CARRIER_B = "carrier-a", "carrier-b"


def _carrier_offers(plan: LocalPlan) -> dict[str, dict[str, str]]:
    return {
        carrier: {
            "url": _url(plan, "carriers", carrier),
            "api_key": plan.secret("carriers", f"{carrier}.api_key"),
            "webhook_secret": plan.secret("carriers", f"{carrier}.webhook_secret"),
        }
        for carrier in (CARRIER_A, CARRIER_B)
    }


def _carrier_arguments(plan: LocalPlan) -> list[str]:
    return [
        "--host",
        plan.host,
        "--easypost-port",
        str(plan.port("carriers", CARRIER_A)),
        "--shippo-port",
        str(plan.port("carriers", CARRIER_B)),
        *_webhook_args("--easypost-webhook-url", plan.webhook_url(CARRIER_A)),
        *_webhook_args("--shippo-webhook-url", plan.webhook_url(CARRIER_B)),
        "--tracking-delay",
        "2",
    ]


CARRIERS = SandboxDeclaration(
    name="carriers",
    title="carrier sandboxes",
    partners=(CARRIER_A, CARRIER_B),
    ports=(CARRIER_A, CARRIER_B),
    new_secrets=lambda: {
        f"{CARRIER_A}.api_key": "EZTK" + secrets.token_hex(8),
        f"{CARRIER_A}.webhook_secret": secrets.token_hex(16),
        f"{CARRIER_B}.api_key": "shippo_test_" + secrets.token_hex(8),
        f"{CARRIER_B}.webhook_secret": secrets.token_hex(16),
    },
    offers=_carrier_offers,
    arguments=_carrier_arguments,
    secret_environment=lambda plan: {
        SECRET_ENV[f"{carrier}.{name}"]: plan.secret("carriers", f"{carrier}.{name}")
        for carrier in (CARRIER_A, CARRIER_B)
        for name in ("api_key", "webhook_secret")
    },
    pages=lambda plan: {
        "Carrier A sandbox": _url(plan, "carriers", CARRIER_A),
        "Carrier B sandbox": _url(plan, "carriers", CARRIER_B),
    },
)

# -- mail and webhook receiver ---------------------------------------------------------------


def _mail_offers(plan: LocalPlan) -> dict[str, dict[str, str]]:
    return {
        "smtp": {"host": plan.host, "port": str(plan.port("mail", "smtp"))},
        "webhook-receiver": {
            "name": "mail-sandbox",
            "url": f"{_url(plan, 'mail', 'http')}/webhooks",
            "secret": plan.secret("mail", "webhook_secret"),
        },
    }


def _mail_arguments(plan: LocalPlan) -> list[str]:
    return [
        "--host",
        plan.host,
        "--port",
        str(plan.port("mail", "http")),
        "--smtp-port",
        str(plan.port("mail", "smtp")),
    ]


MAIL = SandboxDeclaration(
    name="mail",
    title="mail sandbox",
    partners=("smtp", "webhook-receiver"),
    ports=("http", "smtp"),
    # A Standard Webhooks secret: whsec_ and 32 random bytes in base64.
    new_secrets=lambda: {
        "webhook_secret": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    },
    offers=_mail_offers,
    arguments=_mail_arguments,
    secret_environment=lambda plan: {
        SECRET_ENV["mail.webhook_secret"]: plan.secret("mail", "webhook_secret")
    },
    pages=lambda plan: {
        "Mail sink": f"{_url(plan, 'mail', 'http')}/_sandbox/mail, "
        f"SMTP {plan.host}:{plan.port('mail', 'smtp')}"
    },
)

SANDBOXES: Mapping[str, SandboxDeclaration] = {s.name: s for s in (ODOO, WMS, CARRIERS, MAIL)}
"""Every sandbox of this package, by name (what the entry points name one by one)."""
