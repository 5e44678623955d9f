"""``waybill sandbox odoo|wms|carriers|mail``: run one sandbox in the foreground.

Each prints its URLs and credentials so an integrator can point their own
scripts at it, and stops on Ctrl-C or SIGTERM. The Odoo subcommand lives
with the Odoo sandbox (``waybill_sandboxes.odoo.cli``).

Secrets are read from the environment first (``WAYBILL_SANDBOX_*``, see
:data:`~waybill_sandboxes.declarations.SECRET_ENV`): that is how the local
stack hands them over, since a command line is visible to every local user.
A secret that came from the environment is not printed (the banner may end in
a log file); one given as an option or left at its default is.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from waybill_sandboxes.carriers import CarrierConfig, EasyPostSandbox, ShippoSandbox
from waybill_sandboxes.declarations import SECRET_ENV
from waybill_sandboxes.delivery import DeliveryMode, DeliveryPolicy
from waybill_sandboxes.mail import MailSandbox
from waybill_sandboxes.profile import (
    BENCHMARK_STOCK,
    BENCHMARK_WEBHOOK_CONCURRENCY,
    PROFILE_ENV,
    SandboxProfile,
    profile_from_env,
)
from waybill_sandboxes.server import run_apps_forever
from waybill_sandboxes.wms import WmsConfig, WmsSandbox
from waybill_sandboxes.wms.catalogue import CatalogueLimits
from waybill_sandboxes.wms.records import STAGES

__all__ = ["build_parser", "main"]

Subparsers = argparse._SubParsersAction  # argparse exposes no public name for it


# -- argument types: refuse bad values with a message that says what is allowed ---


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port: use 0-65535 (0: any free)")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: use 0 or more seconds")
    return value


def per_second(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate per second") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: use 0 (unlimited) or more")
    return value


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not a probability: use 0 to 1")
    return value


def secret_default(name: str, fallback: str | None) -> str | None:
    """A secret option's default: its environment variable (``SECRET_ENV[name]``) when set."""
    return os.environ.get(SECRET_ENV[name]) or fallback


def shown_secret(name: str, value: str | None) -> str:
    """``value`` for a banner, unless it came from the environment (then only where from)."""
    variable = SECRET_ENV[name]
    if value and os.environ.get(variable) == value:
        return f"(from ${variable})"
    return value or ""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--seed", type=int, default=None, help="seed for repeatable randomness")


def _add_profile(parser: argparse.ArgumentParser) -> None:
    # Only the sandboxes with simulated delays or limits (the WMS, the carriers) have one.
    parser.add_argument(
        "--profile",
        type=SandboxProfile,
        choices=list(SandboxProfile),
        default=None,
        help="standard (the options as given) or benchmark (no delays, no purchase limit, "
        f"concurrent webhooks, WMS stock that does not run out; overrides those options); "
        f"default ${PROFILE_ENV} or standard",
    )


def _benchmark(args: argparse.Namespace) -> bool:
    # The option wins; the environment is how the local stack sets every sandbox at once.
    profile = args.profile if args.profile is not None else profile_from_env()
    return bool(profile is SandboxProfile.BENCHMARK)


def _add_delivery(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--delivery",
        choices=[mode.value for mode in DeliveryMode],
        default=DeliveryMode.NORMAL.value,
        help=f"how {what} webhooks are delivered (default normal)",
    )
    parser.add_argument(
        "--drop-rate",
        type=probability,
        default=0.5,
        help="share of webhooks lost in lossy mode (default 0.5)",
    )


def _policy(args: argparse.Namespace) -> DeliveryPolicy:
    return DeliveryPolicy(
        mode=DeliveryMode(args.delivery),
        drop_rate=args.drop_rate,
        concurrency=BENCHMARK_WEBHOOK_CONCURRENCY if _benchmark(args) else 1,
    )


def _serve(
    name: str,
    apps: list[tuple[web.Application, int]],
    host: str,
    banner: Callable[[list[str]], str],
) -> int:
    try:
        run_apps_forever(apps, host, banner)
    except OSError as cannot_listen:
        print(
            f"waybill sandbox {name}: error: {cannot_listen.strerror or cannot_listen}",
            file=sys.stderr,
        )
        return 2
    return 0


# -- wms ----------------------------------------------------------------------------


def _register_wms(subparsers: Subparsers[Any]) -> None:
    parser = subparsers.add_parser(
        "wms",
        help="run a stand-in warehouse system (REST API, signed lifecycle webhooks)",
        description=(
            "Run a warehouse system that accepts outbound orders and walks each through "
            "accepted, picked, packed and shipped, announcing every step by a signed webhook; "
            "it also expects returns, which its dock receives and inspects when told to."
        ),
    )
    _add_common(parser)
    parser.add_argument("--port", type=port, default=8070, help="TCP port (default 8070)")
    parser.add_argument(
        "--api-key",
        default=secret_default("wms.api_key", "wms-sandbox-key"),
        help=f"expected X-Api-Key (or ${SECRET_ENV['wms.api_key']})",
    )
    parser.add_argument("--webhook-url", default=None, help="where lifecycle webhooks go")
    parser.add_argument(
        "--webhook-secret",
        default=secret_default("wms.webhook_secret", "wms-sandbox-secret"),
        help=f"HMAC key of X-WMS-Signature (or ${SECRET_ENV['wms.webhook_secret']})",
    )
    parser.add_argument("--warehouse", default="WH1", help="warehouse code (default WH1)")
    parser.add_argument(
        "--stage-delay", type=seconds, default=None, help="seconds before each lifecycle stage"
    )
    parser.add_argument(
        "--short-pick-rate", type=probability, default=0.0, help="share of orders picked short"
    )
    parser.add_argument(
        "--product-calls-rate",
        type=per_second,
        default=5.0,
        help="product upload calls per second per key before 429 (default 5; 0: unlimited)",
    )
    parser.add_argument(
        "--reject-returns",
        action="store_true",
        help="inspection judges every returned unit damaged (PUT /_sandbox/returns/inspection)",
    )
    _add_delivery(parser, "lifecycle")
    _add_profile(parser)
    parser.set_defaults(handler=_run_wms)


def _run_wms(args: argparse.Namespace) -> int:
    stage_delay = 0.0 if _benchmark(args) else args.stage_delay
    delays = {} if stage_delay is None else {s.value: stage_delay for s in STAGES}
    config = WmsConfig(
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        warehouse=args.warehouse,
        stage_delays_s=delays,
        short_pick_rate=args.short_pick_rate,
        reject_returns=args.reject_returns,
        delivery=_policy(args),
        catalogue=CatalogueLimits(calls_per_s=args.product_calls_rate),
        seed=args.seed,
    )
    if _benchmark(args):
        config = msgspec.structs.replace(
            config, default_stock=BENCHMARK_STOCK, catalogue=CatalogueLimits(calls_per_s=0)
        )
    sandbox = WmsSandbox(config)

    def banner(urls: list[str]) -> str:
        url = urls[0]
        return "\n".join(
            [
                "Waybill WMS sandbox",
                f"  API:            {url}/api/v1  "
                f"(header X-Api-Key: {shown_secret('wms.api_key', config.api_key)})",
                f"  Webhooks to:    {config.webhook_url or 'nowhere yet: PUT /_sandbox/webhook'}",
                f"  Webhook secret: {shown_secret('wms.webhook_secret', config.webhook_secret)}",
                '  Signature:      X-WMS-Signature = hex HMAC-SHA256 of "<X-WMS-Timestamp>.<body>"',
                f"  Admin:          {url}/_sandbox/orders  {url}/_sandbox/returns  "
                f"{url}/_sandbox/faults",
                "Ctrl-C stops it.",
            ]
        )

    return _serve("wms", [(sandbox.app(), args.port)], args.host, banner)


# -- carriers -----------------------------------------------------------------------


def _register_carriers(subparsers: Subparsers[Any]) -> None:
    parser = subparsers.add_parser(
        "carriers",
        help="run two stand-in carriers: A (EasyPost style) and B (Shippo style)",
        description=(
            "Run two carrier APIs on two ports. Both rate, sell labels (no idempotency key: "
            "a blind retry buys twice), void, and send signed tracking webhooks."
        ),
    )
    _add_common(parser)
    parser.add_argument("--easypost-port", type=port, default=8071, help="Carrier A port")
    parser.add_argument("--shippo-port", type=port, default=8072, help="Carrier B port")
    for option, name, fallback, what in (
        ("--easypost-key", "carrier-a.api_key", "EZTK-sandbox", "Carrier A API key"),
        ("--shippo-key", "carrier-b.api_key", "shippo_test_sandbox", "Carrier B token"),
        (
            "--easypost-webhook-secret",
            "carrier-a.webhook_secret",
            "easypost-sandbox-secret",
            "Carrier A HMAC key",
        ),
        (
            "--shippo-webhook-secret",
            "carrier-b.webhook_secret",
            "shippo-sandbox-secret",
            "Carrier B HMAC key",
        ),
    ):
        parser.add_argument(
            option, default=secret_default(name, fallback), help=f"{what} (or ${SECRET_ENV[name]})"
        )
    parser.add_argument("--easypost-webhook-url", default=None, help="Carrier A tracking hooks")
    parser.add_argument("--shippo-webhook-url", default=None, help="Carrier B tracking hooks")
    parser.add_argument(
        "--tracking-delay", type=seconds, default=2.0, help="seconds between tracking scans"
    )
    parser.add_argument(
        "--purchase-rate",
        type=per_second,
        default=5.0,
        help="label purchases per second per key before 429 (0: unlimited)",
    )
    _add_delivery(parser, "tracking")
    _add_profile(parser)
    parser.set_defaults(handler=_run_carriers)


def _run_carriers(args: argparse.Namespace) -> int:
    benchmark = _benchmark(args)

    def config(key: str, url: str | None, secret: str) -> CarrierConfig:
        return CarrierConfig(
            api_key=key,
            webhook_url=url,
            webhook_secret=secret,
            purchase_rate_per_s=0 if benchmark else args.purchase_rate,
            tracking_delays_s=[0.0 if benchmark else args.tracking_delay],
            delivery=_policy(args),
            seed=args.seed,
        )

    carrier_a = EasyPostSandbox(
        config(args.easypost_key, args.easypost_webhook_url, args.easypost_webhook_secret)
    )
    carrier_b = ShippoSandbox(
        config(args.shippo_key, args.shippo_webhook_url, args.shippo_webhook_secret)
    )

    def banner(urls: list[str]) -> str:
        a, b = carrier_a.config, carrier_b.config
        return "\n".join(
            [
                f"{carrier_a.display_name}",
                f"  API:            {urls[0]}/v2  (HTTP Basic, user "
                f"{shown_secret('carrier-a.api_key', a.api_key)}, no password)",
                f"  Webhooks to:    {a.webhook_url or 'nowhere yet: PUT /_sandbox/webhook'}",
                "  Webhook secret: "
                f"{shown_secret('carrier-a.webhook_secret', a.webhook_secret)}  "
                "(X-Hmac-Signature: hmac-sha256-hex=...)",
                f"{carrier_b.display_name}",
                f"  API:            {urls[1]}  "
                f"(Authorization: ShippoToken {shown_secret('carrier-b.api_key', b.api_key)})",
                f"  Webhooks to:    {b.webhook_url or 'nowhere yet: PUT /_sandbox/webhook'}",
                "  Webhook secret: "
                f"{shown_secret('carrier-b.webhook_secret', b.webhook_secret)}  "
                "(X-Shippo-Signature: t=...,v1=...)",
                "Ctrl-C stops them.",
            ]
        )

    apps = [(carrier_a.app(), args.easypost_port), (carrier_b.app(), args.shippo_port)]
    return _serve("carriers", apps, args.host, banner)


# -- mail ---------------------------------------------------------------------------


def _register_mail(subparsers: Subparsers[Any]) -> None:
    parser = subparsers.add_parser(
        "mail",
        help="run an SMTP sink and a Standard Webhooks receiver for notifications",
        description=(
            "Run an SMTP server that keeps every message, and an HTTP endpoint that verifies "
            "and records Standard Webhooks deliveries."
        ),
    )
    _add_common(parser)
    parser.add_argument("--smtp-port", type=port, default=8025, help="SMTP port (default 8025)")
    parser.add_argument("--port", type=port, default=8073, help="HTTP port (default 8073)")
    parser.add_argument(
        "--secret",
        default=secret_default("mail.webhook_secret", None),
        help="Standard Webhooks secret, whsec_... "
        f"(or ${SECRET_ENV['mail.webhook_secret']}; default: a new one)",
    )
    parser.set_defaults(handler=_run_mail)


def _run_mail(args: argparse.Namespace) -> int:
    try:
        sandbox = MailSandbox(smtp_host=args.host, smtp_port=args.smtp_port, secret=args.secret)
    except ValueError as invalid:
        print(f"waybill sandbox mail: error: {invalid}", file=sys.stderr)
        return 2

    def banner(urls: list[str]) -> str:
        return "\n".join(
            [
                "Waybill mail sandbox",
                f"  SMTP:           {sandbox.smtp.host}:{sandbox.smtp.port}  (no auth, no TLS)",
                f"  Webhook URL:    {urls[0]}/webhooks",
                f"  Webhook secret: {shown_secret('mail.webhook_secret', sandbox.receiver.secret)}",
                f"  Admin:          {urls[0]}/_sandbox/mail  {urls[0]}/_sandbox/deliveries",
                "Ctrl-C stops it.",
            ]
        )

    return _serve("mail", [(sandbox.app(), args.port)], args.host, banner)


# -- entry point ----------------------------------------------------------------------


def _register_odoo(subparsers: Subparsers[Any]) -> None:
    try:
        from waybill_sandboxes.odoo.cli import register
    except ModuleNotFoundError as missing:
        if missing.name not in ("waybill_sandboxes.odoo", "waybill_sandboxes.odoo.cli"):
            raise
        return  # the Odoo sandbox is not part of this installation
    register(subparsers)


def build_parser(prog: str = "waybill sandbox") -> argparse.ArgumentParser:
    """The parser of every sandbox subcommand."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run one partner sandbox in the foreground and print how to reach it.",
    )
    subparsers = parser.add_subparsers(title="sandboxes", metavar="SANDBOX", required=True)
    _register_odoo(subparsers)
    _register_wms(subparsers)
    _register_carriers(subparsers)
    _register_mail(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "waybill sandbox") -> int:
    """Parse ``argv`` and run the chosen sandbox; returns the exit code."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    code: int = args.handler(args)
    return code
