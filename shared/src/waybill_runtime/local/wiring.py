"""How the local stack wires the partner sandboxes and the services together.

Every process gets a free port on 127.0.0.1; each side of a connection is
handed the same URL and secret, so `waybill up` needs no configuration. The
secrets are fresh for every run: nothing local is mistaken for a real key.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from dataclasses import dataclass, field

from waybill_runtime.local.ports import free_port

SANDBOX_MODULE = "waybill_sandboxes"


@dataclass(frozen=True)
class ChildSpec:
    """One process of the local stack."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    # host:port the process listens on once it is up (checked before going on)
    listens_on: tuple[str, int] | None = None
    # what to print for a person to look at
    urls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalPorts:
    odoo: int
    wms: int
    carrier_a: int
    carrier_b: int
    mail_http: int
    smtp: int
    services: dict[str, int]

    @classmethod
    def allocate(cls, services: list[str]) -> LocalPorts:
        return cls(
            odoo=free_port(),
            wms=free_port(),
            carrier_a=free_port(),
            carrier_b=free_port(),
            mail_http=free_port(),
            smtp=free_port(),
            services={name: free_port() for name in services},
        )


@dataclass(frozen=True)
class LocalSecrets:
    odoo_webhook_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    wms_api_key: str = field(default_factory=lambda: "wms-" + secrets.token_hex(8))
    wms_webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    carrier_a_api_key: str = field(default_factory=lambda: "EZTK" + secrets.token_hex(8))
    carrier_a_webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    carrier_b_api_key: str = field(default_factory=lambda: "shippo_test_" + secrets.token_hex(8))
    carrier_b_webhook_secret: str = field(default_factory=lambda: secrets.token_hex(16))
    # Standard Webhooks secret shared by the notifier and the mail sandbox's receiver.
    outbound_webhook_secret: str = field(
        default_factory=lambda: "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    )


LOCAL = "127.0.0.1"


def _url(port: int) -> str:
    return f"http://{LOCAL}:{port}"


def sandboxes(ports: LocalPorts, keys: LocalSecrets, *, odoo_version: int = 17) -> list[ChildSpec]:
    """The partner sandboxes, each posting its webhooks to the service that owns the partner."""
    run = [sys.executable, "-m", SANDBOX_MODULE]
    gateway = _url(ports.services.get("odoo-gateway", 0))
    bridge = _url(ports.services.get("wms-bridge", 0))
    router = _url(ports.services.get("carrier-router", 0))
    return [
        ChildSpec(
            name="odoo sandbox",
            argv=[
                *run, "odoo", "--host", LOCAL, "--port", str(ports.odoo),
                "--version", str(odoo_version), "--orders", "0",
                "--webhook-url", f"{gateway}/webhooks/odoo/{keys.odoo_webhook_token}",
            ],
            listens_on=(LOCAL, ports.odoo),
            urls={"Odoo sandbox": f"{_url(ports.odoo)}  (db waybill, admin/admin)"},
        ),
        ChildSpec(
            name="wms sandbox",
            argv=[
                *run, "wms", "--host", LOCAL, "--port", str(ports.wms),
                "--api-key", keys.wms_api_key, "--webhook-secret", keys.wms_webhook_secret,
                "--webhook-url", f"{bridge}/webhooks/wms", "--stage-delay", "1",
            ],
            listens_on=(LOCAL, ports.wms),
            urls={"WMS sandbox": _url(ports.wms)},
        ),
        ChildSpec(
            name="carrier sandboxes",
            argv=[
                *run, "carriers", "--host", LOCAL,
                "--easypost-port", str(ports.carrier_a), "--shippo-port", str(ports.carrier_b),
                "--easypost-key", keys.carrier_a_api_key,
                "--shippo-key", keys.carrier_b_api_key,
                "--easypost-webhook-secret", keys.carrier_a_webhook_secret,
                "--shippo-webhook-secret", keys.carrier_b_webhook_secret,
                "--easypost-webhook-url", f"{router}/webhooks/carriers/carrier-a",
                "--shippo-webhook-url", f"{router}/webhooks/carriers/carrier-b",
                "--tracking-delay", "2",
            ],
            listens_on=(LOCAL, ports.carrier_b),
            urls={
                "Carrier A sandbox": _url(ports.carrier_a),
                "Carrier B sandbox": _url(ports.carrier_b),
            },
        ),
        ChildSpec(
            name="mail sandbox",
            argv=[
                *run, "mail", "--host", LOCAL,
                "--port", str(ports.mail_http), "--smtp-port", str(ports.smtp),
                "--secret", keys.outbound_webhook_secret,
            ],
            listens_on=(LOCAL, ports.mail_http),
            urls={"Mail sink": f"{_url(ports.mail_http)}/_sandbox/mail, SMTP {LOCAL}:{ports.smtp}"},
        ),
    ]  # fmt: skip


def service_environment(name: str, ports: LocalPorts, keys: LocalSecrets) -> dict[str, str]:
    """The WAYBILL_* variables service ``name`` needs in the local stack."""
    env = {
        "WAYBILL_SERVICE": name,
        "WAYBILL_HTTP_HOST": LOCAL,
        "WAYBILL_HTTP_PORT": str(ports.services[name]),
    }
    partners: dict[str, dict[str, str]] = {
        "odoo-gateway": {
            "WAYBILL_ODOO_URL": _url(ports.odoo),
            "WAYBILL_ODOO_DB": "waybill",
            "WAYBILL_ODOO_LOGIN": "admin",
            "WAYBILL_ODOO_PASSWORD": "admin",
            "WAYBILL_ODOO_WEBHOOK_TOKEN": keys.odoo_webhook_token,
            "WAYBILL_ODOO_POLL_INTERVAL_S": "10",
        },
        "wms-bridge": {
            "WAYBILL_WMS_URL": _url(ports.wms),
            "WAYBILL_WMS_API_KEY": keys.wms_api_key,
            "WAYBILL_WMS_WEBHOOK_SECRET": keys.wms_webhook_secret,
            "WAYBILL_WMS_RECONCILE_INTERVAL_S": "10",
        },
        "carrier-router": {
            "WAYBILL_CARRIER_A_URL": _url(ports.carrier_a),
            "WAYBILL_CARRIER_A_API_KEY": keys.carrier_a_api_key,
            "WAYBILL_CARRIER_A_WEBHOOK_SECRET": keys.carrier_a_webhook_secret,
            "WAYBILL_CARRIER_B_URL": _url(ports.carrier_b),
            "WAYBILL_CARRIER_B_API_KEY": keys.carrier_b_api_key,
            "WAYBILL_CARRIER_B_WEBHOOK_SECRET": keys.carrier_b_webhook_secret,
            # Locally a carrier that is back should be tried again soon.
            "WAYBILL_CARRIER_CIRCUIT_RESET_S": "2",
        },
        "notifier": {
            "WAYBILL_SMTP_HOST": LOCAL,
            "WAYBILL_SMTP_PORT": str(ports.smtp),
            "WAYBILL_WEBHOOK_SUBSCRIPTIONS": json.dumps(
                [
                    {
                        "name": "mail-sandbox",
                        "url": f"{_url(ports.mail_http)}/webhooks",
                        "secret": keys.outbound_webhook_secret,
                    }
                ]
            ),
            # Locally a provider outage should not delay mail by minutes.
            "WAYBILL_RETRY_BACKOFF_S": "0.5,1,2,5",
        },
    }
    env.update(partners.get(name, {}))
    return env
