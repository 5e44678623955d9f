"""`waybill up`: the local stack in the foreground (what `make run` and `make demo` call)."""

from __future__ import annotations

import argparse
import math
import os
import ssl
import threading
from collections.abc import Collection
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from waybill_runtime.cli.options import (
    add_embedded_nats_options,
    embedded_nats_options,
    env_port,
    port_number,
    subject_prefix_from_env,
)
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.embedded_cluster import (
    CLUSTER_PORT,
    ClusterSizeError,
    check_cluster_size,
)
from waybill_runtime.local.foreground import until_stopped
from waybill_runtime.local.plan import LocalPlan
from waybill_runtime.local.stack import LocalStack
from waybill_runtime.security.permissions import OPERATOR

DEMO_GROUP = "waybill.demo"
LOCAL_TOKEN_TTL = timedelta(hours=12)


class LocalDemo(Protocol):
    """What `waybill up` runs beside the stack (the ``waybill.demo`` entry point)."""

    def check_possible(self, services: Collection[str], sandboxes: Collection[str]) -> None: ...

    def trickle(self, plan: LocalPlan, every_s: float, stop: threading.Event) -> None: ...

    def run(
        self,
        plan: LocalPlan,
        nats_url: str,
        *,
        orders: int,
        timeout_s: float,
        log_dir: Path,
        nkey_seed_file: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> int: ...


def installed_demo() -> LocalDemo | None:
    """The installed demo (the ``waybill-demo`` package), or None."""
    for ep in entry_points(group=DEMO_GROUP):
        demo: LocalDemo = ep.load()
        return demo
    return None


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise argparse.ArgumentTypeError(f"{text} is not 0 or more seconds")
    return seconds


def _order_count(text: str) -> int:
    count = _whole_number(text)
    if count < 1:
        raise argparse.ArgumentTypeError(f"{count} is too few: a demo needs at least one order")
    return count


MAX_REPLICAS = 8


def _replica_count(text: str) -> int:
    count = _whole_number(text)
    if not 1 <= count <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"{count} replicas: give 1 to {MAX_REPLICAS}")
    return count


def _cluster_size(text: str) -> int:
    try:
        return check_cluster_size(_whole_number(text))
    except ClusterSizeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _demo_timeout(text: str) -> float:
    seconds = _seconds(text)
    if seconds == 0:
        raise argparse.ArgumentTypeError("0 seconds is too short: give the demo time to run")
    return seconds


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "up",
        help="start Waybill locally: embedded NATS, sandboxes, every service (Ctrl-C stops)",
        description=(
            "Start the local stack in the foreground: an embedded nats-server with JetStream "
            "(or --nats-url for an external one), the partner sandboxes and every installed "
            "service as its own process, with a trickle of demo orders. Ctrl-C or SIGTERM "
            "stops everything."
        ),
    )
    add_embedded_nats_options(parser)
    parser.add_argument(
        "--nats-url", default=None, help="use this NATS server instead of starting the embedded one"
    )
    parser.add_argument(
        "--order-every",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="create a demo order this often (0: none; default 5)",
    )
    parser.add_argument(
        "--replicas",
        type=_replica_count,
        default=1,
        metavar="N",
        help="run N instances of every service on their shared durables, as a Deployment's "
        "replicas (1 to 8; default 1)",
    )
    parser.add_argument(
        "--cluster",
        type=_cluster_size,
        default=1,
        metavar="N",
        help="run N embedded nats-server nodes as one JetStream cluster: 1 (default) or 3, "
        "with streams and KV buckets replicated on all three; node i listens on --port + i, "
        "--monitor-port + i and --cluster-port + i, and keeps its store in "
        "<state folder>/nats/node-<i+1>",
    )
    parser.add_argument(
        "--cluster-port",
        type=port_number,
        default=None,
        metavar="PORT",
        help="first node's route port with --cluster 3 (default $WAYBILL_NATS_CLUSTER_PORT or "
        f"{CLUSTER_PORT}; 0 = any free ports)",
    )
    parser.add_argument(
        "--otlp",
        default=None,
        metavar="URL",
        help=(
            "export every service's traces to this OTLP endpoint (sets "
            "OTEL_EXPORTER_OTLP_ENDPOINT for them; e.g. http://localhost:4318)"
        ),
    )
    demo = parser.add_argument_group("demo (finite run that checks its outcome)")
    demo.add_argument(
        "--demo", action="store_true", help="run the demo scenario, print a summary, stop"
    )
    demo.add_argument(
        "--orders", type=_order_count, default=50, help="demo orders, 1 or more (default 50)"
    )
    demo.add_argument(
        "--timeout",
        type=_demo_timeout,
        default=300.0,
        help="seconds the demo may take (default 300)",
    )
    parser.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace) -> int:
    stack = LocalStack(
        embedded_nats_options(args),
        external_nats_url=args.nats_url,
        secure=not args.no_auth,
        subject_prefix=subject_prefix_from_env(),
        tls=args.tls,
        mtls=args.mtls,
        replicas=args.replicas,
        cluster=args.cluster,
        cluster_port=(
            args.cluster_port
            if args.cluster_port is not None
            else env_port("WAYBILL_NATS_CLUSTER_PORT", CLUSTER_PORT)
        ),
    )
    if args.cluster > 1 and args.nats_url is not None:
        raise UserFacingError(
            "--cluster starts embedded nats-server nodes: leave it out with --nats-url, "
            "and set WAYBILL_STREAM_REPLICAS for the services when that server is a cluster"
        )
    if (args.tls or args.mtls) and args.nats_url is not None:
        raise UserFacingError(
            "--tls and --mtls configure the embedded server: leave them out with --nats-url "
            "and give the services WAYBILL_NATS_TLS_CA_FILE (and a client certificate) instead"
        )
    if args.otlp:
        if not args.otlp.startswith(("http://", "https://")):
            raise UserFacingError(
                f"--otlp {args.otlp} is not a URL: give the collector's OTLP endpoint, "
                "e.g. http://localhost:4318"
            )
        # The services inherit this environment; the SDK does the rest (protocol,
        # headers, sampler from the other OTEL_* variables when they are set).
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.otlp
    demo = installed_demo()
    if args.demo:
        if demo is None:
            raise UserFacingError(
                "the demo is not installed: pip install -e deploy/demo (make demo does)"
            )
        demo.check_possible(stack.services, stack.sandboxes)
    with until_stopped() as stop:
        stack.start()
        try:
            _print_urls(stack)
            assert stack.plan is not None
            _print_api_tokens(stack.plan)
            if args.demo:
                assert demo is not None
                return demo.run(
                    stack.plan,
                    stack.nats_url,
                    orders=args.orders,
                    timeout_s=args.timeout,
                    log_dir=stack.log_dir,
                    nkey_seed_file=stack.operator_seed_file(),
                    tls=stack.client_tls(OPERATOR),
                )
            if demo is not None and args.order_every > 0:
                demo.trickle(stack.plan, args.order_every, stop)
            print("Waybill is up. Ctrl-C stops everything.", flush=True)
            # A crashed service, sandbox or nats-server node is started again, as
            # Kubernetes would.
            stack.supervise_until(stop, lambda line: print(f"waybill: {line}", flush=True))
        finally:
            stack.stop()
    return 0


def _print_api_tokens(plan: LocalPlan) -> None:
    """A viewer's and an operator's token for the APIs, printed once (never on a command line)."""
    if plan.api_keys is None:
        return
    tokens = {
        role: plan.api_keys.issue(role, subject=f"local-{role}", ttl=LOCAL_TOKEN_TTL)
        for role in ("viewer", "operator")
    }
    hours = LOCAL_TOKEN_TTL.total_seconds() / 3600
    print(
        f"API tokens (valid {hours:g} h; send as Authorization: Bearer <token>, or paste one "
        "into the control tower's sign-in page):",
        flush=True,
    )
    for role, issued in tokens.items():
        print(f"  {role + ':':<10}{issued.token}", flush=True)


def _print_urls(stack: LocalStack) -> None:
    """Where to look, aligned: NATS, each sandbox and service, the useful pages, the logs."""
    lines = {"NATS client URL": stack.nats_url}
    nodes = stack.nats_nodes
    if len(nodes) == 1:
        lines["NATS monitoring URL"] = nodes[0].monitor_url
    for node in nodes if len(nodes) > 1 else []:
        lines[f"NATS node {node.name}"] = (
            f"{node.client_url} (monitoring {node.monitor_url}; log {node.log_path})"
        )
    lines.update(stack.urls)
    if stack.security is not None:
        seeds = stack.security.seed_file(OPERATOR).parent
        lines["NATS identities"] = f"{seeds} (on; --no-auth turns them off)"
    if stack.plan is not None and stack.plan.api_keys is not None:
        lines["API signing key"] = f"{stack.plan.api_keys.folder} (`waybill token` makes tokens)"
    if stack.local_tls is not None:
        mutual = ", client certificates required" if stack.local_tls.mutual else ""
        lines["NATS TLS CA"] = f"{stack.local_tls.pki.ca_file} (TLS on{mutual})"
    lines["logs"] = str(stack.log_dir)
    width = max(len(name) for name in lines) + 2
    for name, value in lines.items():
        print(f"{name + ':':<{width}}{value}", flush=True)
