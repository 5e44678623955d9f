"""How a `waybill` command that connects to NATS says who it is: options and the connection.

A command runs as one identity (``admin`` for `waybill provision`,
``operator`` for `waybill dlq`). Its nkey seed file comes from
``--nkey-seed-file``, else ``$WAYBILL_NATS_NKEY_SEED_FILE``, else the seed the
local stack keeps for that identity in the state folder (so commands work
against `waybill up` and `waybill nats` without options); a server without
authorization needs none. Its TLS files come the same way: ``--tls-*-file``,
else ``$WAYBILL_NATS_TLS_*``, else the local CA of `waybill up --tls`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats.errors
from nats.aio.client import Client as NatsClient

from waybill_runtime.bus.client import connect_client, shown_url
from waybill_runtime.errors import UserFacingError
from waybill_runtime.local.stack import check_nats_reachable
from waybill_runtime.security.local_ca import LocalPki, tls_folder
from waybill_runtime.security.mesh import identities_folder
from waybill_runtime.security.nkeys_store import seed_path
from waybill_runtime.security.permissions import inbox_prefix
from waybill_runtime.security.tls import (
    CA_FILE_VAR,
    CERT_FILE_VAR,
    KEY_FILE_VAR,
    TlsFiles,
    client_context,
    explain_tls_failure,
)


def add_identity_options(parser: argparse.ArgumentParser, identity: str) -> None:
    group = parser.add_argument_group(f"NATS identity (this command runs as {identity})")
    group.add_argument(
        "--nkey-seed-file",
        type=Path,
        default=None,
        help=(
            f"nkey seed of the {identity} user (default $WAYBILL_NATS_NKEY_SEED_FILE, else "
            f"<state folder>/nats/identities/{identity}.nk when it exists)"
        ),
    )
    group.add_argument(
        "--credentials-file",
        type=Path,
        default=None,
        help="NATS .creds file instead of a seed (default $WAYBILL_NATS_CREDENTIALS_FILE)",
    )
    tls = parser.add_argument_group("NATS TLS (for servers that require it)")
    tls.add_argument(
        "--tls-ca-file",
        type=Path,
        default=None,
        help=(
            f"CA that signed the server's certificate (default ${CA_FILE_VAR}, else "
            "<state folder>/nats/tls/ca.pem when it exists)"
        ),
    )
    tls.add_argument(
        "--tls-cert-file",
        type=Path,
        default=None,
        help=(
            f"client certificate for mutual TLS (default ${CERT_FILE_VAR}, else "
            f"<state folder>/nats/tls/clients/{identity}.pem when it exists)"
        ),
    )
    tls.add_argument(
        "--tls-key-file",
        type=Path,
        default=None,
        help=f"key of --tls-cert-file (default ${KEY_FILE_VAR}, else the local one)",
    )
    parser.set_defaults(identity=identity)


def _seed_file(args: argparse.Namespace) -> Path | None:
    if args.nkey_seed_file is not None:
        return Path(args.nkey_seed_file)
    if os.environ.get("WAYBILL_NATS_NKEY_SEED_FILE"):
        return Path(os.environ["WAYBILL_NATS_NKEY_SEED_FILE"])
    state_dir = Path(os.environ.get("WAYBILL_STATE_DIR") or ".waybill")
    local = seed_path(identities_folder(state_dir), args.identity)
    return local if local.is_file() else None


def _credentials_file(args: argparse.Namespace) -> Path | None:
    if args.credentials_file is not None:
        return Path(args.credentials_file)
    env = os.environ.get("WAYBILL_NATS_CREDENTIALS_FILE")
    return Path(env) if env else None


def _tls_files(args: argparse.Namespace) -> TlsFiles:
    """Options, else the variables, else the local CA of `waybill up --tls` when it exists.

    Files asked for (options, variables) make the command insist on TLS; files
    only found in the state folder are used when the server asks for TLS, so
    the command still reaches a plaintext server started there later.
    """
    pki = LocalPki(tls_folder(Path(os.environ.get("WAYBILL_STATE_DIR") or ".waybill")))
    asked = False

    def pick(option: Path | None, var: str, local: Path) -> tuple[str | None, str]:
        nonlocal asked
        if option is not None:
            asked = True
            return str(option), "--" + var.removeprefix("WAYBILL_NATS_").lower().replace("_", "-")
        if os.environ.get(var):
            asked = True
            return os.environ[var], var
        return (str(local) if local.is_file() else None), str(local)

    ca, ca_label = pick(args.tls_ca_file, CA_FILE_VAR, pki.ca_file)
    cert, cert_label = pick(args.tls_cert_file, CERT_FILE_VAR, pki.client_cert_file(args.identity))
    key, key_label = pick(args.tls_key_file, KEY_FILE_VAR, pki.client_key_file(args.identity))
    return TlsFiles(
        ca_file=ca,
        cert_file=cert,
        key_file=key,
        ca_label=ca_label,
        cert_label=cert_label,
        key_label=key_label,
        required=asked,
    )


class _Refusals:
    """The last permissions violation the server reported to the command's connection."""

    def __init__(self) -> None:
        self.last: str | None = None

    async def record(self, error: Exception) -> None:
        if "permissions violation" in str(error):
            self.last = str(error).removeprefix("nats: ")


@contextlib.asynccontextmanager
async def connected_identity(args: argparse.Namespace, url: str) -> AsyncIterator[NatsClient]:
    """A connection as the command's identity, closed after; a refused request says so.

    nats-py reports a refused publish to the error callback and lets the request
    time out; the timeout is turned into the server's reason, in one line.
    """
    refusals = _Refusals()
    nc = await connect_identity(args, url, error_cb=refusals.record)
    try:
        yield nc
    except nats.errors.TimeoutError:
        if refusals.last is None:
            raise
        raise UserFacingError(
            f"NATS refused a request of this command ({refusals.last}): run it as the "
            f"{args.identity} identity (--nkey-seed-file with the {args.identity}'s seed)"
        ) from None
    finally:
        await nc.close()


async def connect_identity(
    args: argparse.Namespace,
    url: str,
    *,
    error_cb: Callable[[Exception], Awaitable[None]] | None = None,
) -> NatsClient:
    """Connect to ``url`` as the command's identity; one-line errors for what the user can fix."""
    check_nats_reachable(url)
    seed, credentials = _seed_file(args), _credentials_file(args)
    for option, path in (("--nkey-seed-file", seed), ("--credentials-file", credentials)):
        if path is not None and not path.is_file():
            raise UserFacingError(f"{option} {path}: no such file; point it at an existing file")
    tls = client_context(_tls_files(args))
    try:
        return await connect_client(
            url,
            connect_timeout=5,
            allow_reconnect=False,
            max_reconnect_attempts=0,
            nkeys_seed=str(seed) if seed is not None else None,
            user_credentials=str(credentials) if credentials is not None else None,
            inbox_prefix=inbox_prefix(args.identity),
            tls=tls,
            **({"error_cb": error_cb} if error_cb is not None else {}),
        )
    except Exception as error:  # nats-py raises several unrelated types here
        shown = shown_url(url)
        explained = explain_tls_failure(error, shown, tls=tls)
        if explained is not None:
            raise UserFacingError(explained) from None
        if isinstance(error, OSError):
            raise UserFacingError(
                f"NATS at {shown} closed the connection while this command connected "
                f"({error.strerror or error}): check the URL and the server's log"
            ) from None
        if not isinstance(error, nats.errors.Error):
            raise
        if "authorization" in str(error).lower():
            used = seed or credentials
            raise UserFacingError(
                f"NATS at {shown} refused the {args.identity} identity"
                f"{f' from {used}' if used else ' (no credentials given)'}: pass its seed with "
                "--nkey-seed-file (or WAYBILL_NATS_NKEY_SEED_FILE), or point WAYBILL_STATE_DIR "
                "at the state folder of `waybill up`"
            ) from None
        raise
