"""Errors a user of Waybill meets and can act on."""

from __future__ import annotations


class UserFacingError(Exception):
    """Something the user can fix: the message says what happened and what to do.

    The command line prints it as one line and exits with ``exit_code``;
    services log it as one line and stop.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
