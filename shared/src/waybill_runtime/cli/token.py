"""`waybill token`: API tokens signed with the local key `waybill up` made (local use).

``issue`` prints a token (stdout: the token alone, so ``TOKEN=$(waybill token
issue ...)`` works; stderr: what it grants). ``rotate``, ``retire`` and
``revoke`` change the JWKS and the revocation list the local services read
again when they change. In production tokens come from the identity provider.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

from waybill_runtime.security.api_tokens import ROLES
from waybill_runtime.security.local_api_keys import LocalApiKeys

MAX_TTL = timedelta(days=30)
_TTL_PART = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def ttl(text: str) -> timedelta:
    """argparse type: ``90`` (seconds), ``15m``, ``1h``, ``1h30m``, ``7d``; at most 30 days."""
    stripped = text.strip().lower()
    if stripped.isdigit():
        stripped += "s"
    parts = _TTL_PART.findall(stripped)
    if not parts or "".join(n + unit for n, unit in parts) != stripped:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration: write e.g. 90s, 15m, 1h, 1h30m or 7d"
        )
    duration = sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta())
    if duration <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is no time at all: a token must live a while")
    if duration > MAX_TTL:
        raise argparse.ArgumentTypeError(f"{text!r} is too long: a local token lives 30d at most")
    return duration


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir or os.environ.get("WAYBILL_STATE_DIR") or ".waybill")


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "token",
        help="API tokens signed with the local key (`waybill up` makes it)",
        description=(
            "API tokens for the services' HTTP APIs, signed with the local key in "
            "<state folder>/api (made by `waybill up`). For local use: in production "
            "tokens come from your identity provider (see docs/security.md)."
        ),
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--state-dir",
            type=Path,
            default=None,
            help="the local stack's state folder (default $WAYBILL_STATE_DIR or .waybill)",
        )
        return sub

    issue = action("issue", "print a token for a subject with a role")
    issue.add_argument("--role", choices=ROLES, required=True, help="what the token may do")
    issue.add_argument("--subject", required=True, help="who calls (the sub claim), e.g. alice")
    issue.add_argument(
        "--ttl", type=ttl, default=timedelta(hours=1), help="how long it lives (default 1h)"
    )
    issue.add_argument("--json", action="store_true", help="print the token and its claims")
    issue.set_defaults(handler=run_issue)

    rotate = action("rotate", "sign with a new key; the old one stays trusted until retired")
    rotate.set_defaults(handler=run_rotate)

    retire = action("retire", "stop trusting old keys: their tokens are refused from now on")
    retire.add_argument(
        "--kid",
        default=None,
        help="only this key (default: all but the current); write --kid=KID, since a key id "
        "(a base64url thumbprint) may start with '-'",
    )
    retire.set_defaults(handler=run_retire)

    revoke = action("revoke", "refuse one token from now on, by its id (jti)")
    revoke.add_argument("jti", help="the token's id (`waybill token issue` prints it)")
    revoke.set_defaults(handler=run_revoke)


def run_issue(args: argparse.Namespace) -> int:
    keys = LocalApiKeys.existing(_state_dir(args))
    issued = keys.issue(args.role, subject=args.subject, ttl=args.ttl)
    expires = issued.expires_at.isoformat().replace("+00:00", "Z")
    if args.json:
        document = {
            "token": issued.token,
            "subject": issued.subject,
            "role": issued.role,
            "jti": issued.token_id,
            "expires_at": expires,
            "kid": issued.kid,
        }
        print(json.dumps(document, indent=2))
    else:
        print(issued.token)
    print(
        f"{issued.role} token for {issued.subject}, valid until {expires} (jti {issued.token_id})",
        file=sys.stderr,
    )
    return 0


def run_rotate(args: argparse.Namespace) -> int:
    keys = LocalApiKeys.existing(_state_dir(args))
    kid = keys.rotate()
    trusted = ", ".join(str(k.get("kid")) for k in keys.trusted())
    print(f"new signing key {kid}; trusted now: {trusted}")
    print("retire the old keys with `waybill token retire` once their tokens are replaced")
    return 0


def run_retire(args: argparse.Namespace) -> int:
    keys = LocalApiKeys.existing(_state_dir(args))
    retired = keys.retire(args.kid)
    print(f"retired: {', '.join(retired)}" if retired else "nothing to retire: one key is trusted")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    keys = LocalApiKeys.existing(_state_dir(args))
    keys.revoke(args.jti)
    print(f"revoked {args.jti}: services refuse it from their next request")
    return 0
