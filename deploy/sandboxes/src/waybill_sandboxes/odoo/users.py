"""Who may call the sandbox: passwords, API keys, write permission, web sessions.

As in Odoo, an API key is accepted wherever a password is (XML-RPC,
JSON-RPC) and is the only credential of the JSON-2 API. ``can_write`` stands
in for Odoo's access groups: a user without it can read but gets an
AccessError on create, write, unlink and business actions; ``administrator``
stands in for Settings / Administration, the only group that may read
automation rules (17+).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from waybill_sandboxes.odoo.exceptions import AccessDenied


@dataclass
class Credential:
    """One user's secrets and permission."""

    uid: int
    login: str
    password: str
    api_key: str
    can_write: bool = True
    # In Settings / Administration (base.group_system): may use the admin-only models
    # (automation rules). Only the demo's ``admin`` is.
    administrator: bool = False
    # 18.0+: res.users.apikeys.expiration_date; an expired key is refused (and later
    # garbage-collected by Odoo). None: never expires (16.0, 17.0).
    api_key_expires_at: datetime | None = None

    def key_valid(self) -> bool:
        """Whether the API key has not expired."""
        return self.api_key_expires_at is None or self.api_key_expires_at > datetime.now(UTC)

    def accepts(self, secret: object) -> bool:
        """Whether ``secret`` is this user's password or API key (compared in constant time)."""
        if not isinstance(secret, str) or not secret:
            return False
        given = secret.encode()
        return hmac.compare_digest(given, self.password.encode()) or (
            hmac.compare_digest(given, self.api_key.encode()) and self.key_valid()
        )


class Credentials:
    """The users' secrets and the open web sessions of one sandbox."""

    def __init__(self) -> None:
        self._by_uid: dict[int, Credential] = {}
        self._sessions: dict[str, int] = {}

    def add(self, credential: Credential) -> None:
        """Register (or replace) a user's secrets."""
        self._by_uid[credential.uid] = credential

    def all(self) -> list[Credential]:
        """Every user that can log in, by uid."""
        return [self._by_uid[uid] for uid in sorted(self._by_uid)]

    def of(self, uid: int) -> Credential:
        """The user's credential; KeyError for an unknown uid."""
        return self._by_uid[uid]

    def by_login(self, login: str) -> Credential | None:
        """The user with this login, if any."""
        return next((c for c in self._by_uid.values() if c.login == login), None)

    def login(self, login: object, password: object) -> int | None:
        """The uid for a login and password (or API key), or None."""
        found = self.by_login(login) if isinstance(login, str) else None
        return found.uid if found is not None and found.accepts(password) else None

    def check(self, uid: object, password: object) -> Credential:
        """The caller's credential, or AccessDenied: what Odoo checks on every RPC call."""
        found = (
            self._by_uid.get(uid) if isinstance(uid, int) and not isinstance(uid, bool) else None
        )
        if found is None or not found.accepts(password):
            raise AccessDenied()
        return found

    def by_api_key(self, key: str) -> Credential | None:
        """The user owning this API key, if any."""
        encoded = key.encode()
        return next(
            (
                c
                for c in self._by_uid.values()
                if hmac.compare_digest(encoded, c.api_key.encode()) and c.key_valid()
            ),
            None,
        )

    def open_session(self, uid: int) -> str:
        """Start a web session; the id goes in the ``session_id`` cookie."""
        session_id = secrets.token_hex(20)
        self._sessions[session_id] = uid
        return session_id

    def session_user(self, session_id: str | None) -> int | None:
        """The uid of a live session, or None."""
        return self._sessions.get(session_id) if session_id else None

    def close_session(self, session_id: str | None) -> None:
        """End one session (``/web/session/destroy``)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def expire_sessions(self) -> None:
        """End every web session, as a server restart or session timeout would."""
        self._sessions.clear()
