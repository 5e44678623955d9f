"""`waybill nats`: the embedded nats-server alone, in the foreground; `waybill nats permissions`
prints the authorization it runs with (or, with ``--helm``, the NATS chart's values for a
cluster); `waybill nats identities` makes the nkey seeds of an installation."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import msgspec

from waybill_contracts import SubjectMap
from waybill_runtime.cli.options import (
    add_embedded_nats_options,
    embedded_nats_options,
    subject_prefix_from_env,
)
from waybill_runtime.local.embedded_nats import EmbeddedNats
from waybill_runtime.local.foreground import until_stopped
from waybill_runtime.local.registry import load_services
from waybill_runtime.local.secured_stack import provision_as_admin, secure_options, tls_options
from waybill_runtime.security.authorization import (
    authorization_json,
    mesh_identities,
    render_authorization,
)
from waybill_runtime.security.mesh import identities_folder
from waybill_runtime.security.nats_chart import (
    SYSTEM_PASSWORD_VAR,
    mesh_values,
    nkey_variable,
    system_password,
)
from waybill_runtime.security.nkeys_store import ensure_users, known_users
from waybill_runtime.security.permissions import ADMIN
from waybill_runtime.security.rotation import revoke, rotate


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "nats",
        help="run the embedded nats-server (JetStream) alone; `nats permissions` prints its users",
        description=(
            "Run the embedded nats-server with JetStream in the foreground and print its "
            "client and monitoring URLs. Every installed service gets its own nkey user with "
            "the permissions generated from its declaration (--no-auth turns that off), and "
            "the streams, buckets and durables are provisioned as the admin. Ctrl-C or SIGTERM "
            "stops it."
        ),
    )
    add_embedded_nats_options(parser)
    parser.set_defaults(handler=run_nats)
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=False)
    permissions = actions.add_parser(
        "permissions",
        help="print the generated authorization block (server config) of every identity",
        description=(
            "Print the nats-server `authorization` block generated from the installed "
            "services' declarations: one nkey user per service, the admin and the operator. "
            "Public keys are those of the seeds in the state folder; identities without a "
            "seed yet show a placeholder."
        ),
    )
    output = permissions.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON, for tools")
    output.add_argument(
        "--helm",
        action="store_true",
        help=(
            "print values for the official NATS Helm chart: the accounts and users, public "
            "keys read from the Secret waybill-nats-users (deploy/nats/accounts.yaml)"
        ),
    )
    permissions.add_argument(
        "--subject-prefix",
        default=None,
        help="subject prefix (default $WAYBILL_SUBJECT_PREFIX or waybill)",
    )
    permissions.add_argument(
        "--state-dir",
        type=Path,
        default=argparse.SUPPRESS,  # keeps `waybill nats --state-dir X permissions` working
        help="state folder whose seeds to read (default $WAYBILL_STATE_DIR or .waybill)",
    )
    permissions.set_defaults(handler=print_permissions)
    identities = actions.add_parser(
        "identities",
        help="make an nkey seed per identity and print their public keys, for a cluster's Secret",
        description=(
            "Make (or keep) an nkey seed for every identity of the installed services, the "
            "admin and the operator in <state folder>/nats/identities, and print each public "
            "key as WAYBILL_NKEY_<IDENTITY>=<key>: the contents of the Secret "
            "waybill-nats-users that the NATS chart's values read (docs/deploy.md). Each seed "
            "goes into a Secret of its own for the service, job or person that uses it."
        ),
    )
    identities.add_argument(
        "--state-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help="folder to keep the seeds in (default $WAYBILL_STATE_DIR or .waybill)",
    )
    identities.set_defaults(handler=make_identities)
    rotate = actions.add_parser(
        "rotate",
        help="give an identity a new nkey without downtime (embedded server, state folder)",
        description=(
            "Rotate IDENTITY's nkey: a new seed is made, the running embedded server accepts "
            "the old and the new key with the same permissions (config reloaded), the seed "
            "file is replaced (a running service reconnects with the new key), then the old "
            "key is removed and the server reloaded again. Without a running server only the "
            "seed is replaced."
        ),
    )
    rotate.add_argument("identity", metavar="IDENTITY", help="a service, admin or operator")
    rotate.add_argument(
        "--wait",
        type=float,
        default=30.0,
        help="seconds to wait for connections to leave the old key before it is removed",
    )
    rotate.set_defaults(handler=rotate_identity)
    revoke = actions.add_parser(
        "revoke",
        help="remove an identity's nkey now: its connections are cut and refused",
        description=(
            "Revoke IDENTITY's nkey: it is removed from the running embedded server's "
            "authorization (config reloaded; the server closes its connections) and its seed "
            "is deleted. The identity stays locked out until `waybill nats` / `waybill up` "
            "issue a new key at their next start."
        ),
    )
    revoke.add_argument("identity", metavar="IDENTITY", help="a service, admin or operator")
    revoke.set_defaults(handler=revoke_identity)
    for action in (rotate, revoke):
        action.add_argument(
            "--state-dir",
            type=Path,
            default=argparse.SUPPRESS,
            help="state folder of the server and seeds (default $WAYBILL_STATE_DIR or .waybill)",
        )


def _say(line: str) -> None:
    print(line, flush=True)


def rotate_identity(args: argparse.Namespace) -> int:
    state_dir = embedded_nats_options(args).state_dir.expanduser().resolve()
    rotate(state_dir, args.identity, say=_say, move_timeout_s=args.wait)
    return 0


def revoke_identity(args: argparse.Namespace) -> int:
    state_dir = embedded_nats_options(args).state_dir.expanduser().resolve()
    revoke(state_dir, args.identity, say=_say)
    return 0


def print_permissions(args: argparse.Namespace) -> int:
    prefix = args.subject_prefix or subject_prefix_from_env()
    if args.helm:
        sys.stdout.write(mesh_values(load_services().values(), prefix))
        return 0
    declarations = [s.describe(subject_prefix=prefix) for s in load_services().values()]
    identities = mesh_identities(declarations, SubjectMap(prefix))
    state_dir = embedded_nats_options(args).state_dir
    users = known_users(identities_folder(state_dir), [i.name for i in identities])
    if args.json:
        encoded = msgspec.json.encode(authorization_json(identities, users))
        sys.stdout.write(msgspec.json.format(encoded).decode() + "\n")
    else:
        sys.stdout.write(render_authorization(identities, users))
    return 0


def make_identities(args: argparse.Namespace) -> int:
    prefix = subject_prefix_from_env()
    declarations = [s.describe(subject_prefix=prefix) for s in load_services().values()]
    names = [i.name for i in mesh_identities(declarations, SubjectMap(prefix))]
    folder = identities_folder(embedded_nats_options(args).state_dir.expanduser().resolve())
    users = ensure_users(folder, names)
    for name in names:
        print(f"{nkey_variable(name)}={users[name].public_key}")
    print(f"{SYSTEM_PASSWORD_VAR}={system_password(folder)}")
    print(f"nkey seeds of {', '.join(names)}: {folder}/<identity>.nk", file=sys.stderr)
    return 0


def run_nats(args: argparse.Namespace) -> int:
    options = embedded_nats_options(args)
    prefix = subject_prefix_from_env()
    services = load_services() if not args.no_auth else {}
    security = None
    if not args.no_auth:
        options, security = secure_options(options, services, prefix)
    local_tls = None
    if args.tls or args.mtls:
        options, local_tls = tls_options(options, load_services(), mutual=args.mtls)
    server = EmbeddedNats(options)
    with until_stopped() as stop:
        server.start()
        try:
            if security is not None:
                provision_as_admin(
                    server.client_url,
                    security,
                    services,
                    prefix,
                    tls=local_tls.context(ADMIN) if local_tls is not None else None,
                )
            print(f"NATS client URL:     {server.client_url}", flush=True)
            print(f"NATS monitoring URL: {server.monitor_url}", flush=True)
            print(f"JetStream store:     {server.state_dir / 'nats' / 'jetstream'}", flush=True)
            if local_tls is not None:
                pki = local_tls.pki
                print(
                    f"NATS TLS CA:         {pki.ca_file} (clients: WAYBILL_NATS_TLS_CA_FILE)",
                    flush=True,
                )
                if local_tls.mutual:
                    print(
                        "  client certificates: WAYBILL_NATS_TLS_CERT_FILE="
                        f"{pki.folder}/clients/<identity>.pem WAYBILL_NATS_TLS_KEY_FILE="
                        f"{pki.folder}/clients/<identity>.key",
                        flush=True,
                    )
            if security is not None:
                folder = identities_folder(server.state_dir)
                print(f"NATS identities:     {folder} (one seed per service, admin, operator)")
                print(
                    "  run a service as itself: WAYBILL_NATS_NKEY_SEED_FILE="
                    f"{folder}/<service>.nk WAYBILL_PROVISION=never waybill run <service>",
                    flush=True,
                )
            while not stop.wait(0.5):
                if not server.running():
                    print(
                        f"waybill: error: nats-server stopped unexpectedly; see {server.log_path}"
                    )
                    return 1
        finally:
            server.stop()
    return 0
