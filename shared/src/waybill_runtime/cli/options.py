"""Command-line options shared by several `waybill` commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.embedded_nats import EmbeddedNatsOptions


def env_port(name: str, default: int) -> int:
    """A port from the environment, validated with a one-line error naming the variable."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise UserFacingError(f"{name}={raw!r} is not valid: expected a port between 0 and 65535")
    return port


def port_number(text: str) -> int:
    """argparse type for a TCP port (0 = any free port)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port between 0 and 65535")
    return port


def add_embedded_nats_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("embedded NATS")
    group.add_argument(
        "--port",
        type=port_number,
        default=None,
        help="NATS client port (default $WAYBILL_NATS_PORT or 4222; 0 = any free port)",
    )
    group.add_argument(
        "--monitor-port",
        type=port_number,
        default=None,
        help="NATS monitoring port (default $WAYBILL_NATS_MONITOR_PORT or 8222; 0 = any free port)",
    )
    group.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    group.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="folder for NATS data and local state (default $WAYBILL_STATE_DIR or .waybill)",
    )
    group.add_argument(
        "--no-auth",
        action="store_true",
        help="run NATS without authentication: no per-service identities or permissions",
    )
    group.add_argument(
        "--tls",
        action="store_true",
        help="serve NATS over TLS with a local CA kept in <state folder>/nats/tls "
        "(clients connect with tls:// and trust its ca.pem)",
    )
    group.add_argument(
        "--mtls",
        action="store_true",
        help="TLS (implies --tls) where NATS also verifies client certificates; one is "
        "issued per identity in <state folder>/nats/tls/clients",
    )
    group.add_argument(
        "--sync-always",
        action="store_true",
        help="fsync every JetStream write (durable across power loss, slower)",
    )


def embedded_nats_options(args: argparse.Namespace) -> EmbeddedNatsOptions:
    state_dir = args.state_dir or Path(os.environ.get("WAYBILL_STATE_DIR") or ".waybill")
    return EmbeddedNatsOptions(
        host=args.host,
        port=args.port if args.port is not None else env_port("WAYBILL_NATS_PORT", 4222),
        monitor_port=(
            args.monitor_port
            if args.monitor_port is not None
            else env_port("WAYBILL_NATS_MONITOR_PORT", 8222)
        ),
        state_dir=state_dir,
        sync_always=args.sync_always,
    )


def add_nats_url_option(parser: argparse.ArgumentParser) -> None:
    """``--nats-url``: the NATS server a command talks to ($NATS_URL, else the local default)."""
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
        help="NATS server (default $NATS_URL or nats://127.0.0.1:4222)",
    )


def add_prefix_option(parser: argparse.ArgumentParser) -> None:
    """``--prefix``: the installation's subject prefix ($WAYBILL_SUBJECT_PREFIX, else waybill)."""
    parser.add_argument(
        "--prefix",
        default=subject_prefix_from_env(),
        help="subject prefix of the installation (default $WAYBILL_SUBJECT_PREFIX or waybill)",
    )


def subject_prefix_from_env() -> str:
    """The subject prefix the services of a local run read (WAYBILL_SUBJECT_PREFIX)."""
    return os.environ.get("WAYBILL_SUBJECT_PREFIX") or "waybill"
