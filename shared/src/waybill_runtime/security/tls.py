"""TLS on the bus, the client's side: its SSLContext, TLS never skipped, what a failure means.

A client is given a CA and, for servers that verify clients, a certificate
and key (``WAYBILL_NATS_TLS_*`` for a service, ``--tls-*-file`` for a
command). nats-py turns a connection into TLS only when the server's INFO
says ``tls_required``: a client with TLS settings, or with a ``tls://`` URL,
would otherwise talk plaintext to a server that does not ask for TLS (or to
something posing as it), and send its credentials in the clear.
:func:`insist_on_tls` makes such a client use TLS whenever the server offers
it and refuse the server when it does not, before anything is sent
(:class:`waybill_runtime.bus.client.WaybillNatsClient` calls it).

The local CA that `waybill up --tls` makes is
:mod:`waybill_runtime.security.local_ca`.
"""

from __future__ import annotations

import os
import ssl
import weakref
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

import nats.errors

from waybill_runtime.errors import UserFacingError

CA_FILE_VAR = "WAYBILL_NATS_TLS_CA_FILE"
CERT_FILE_VAR = "WAYBILL_NATS_TLS_CERT_FILE"
KEY_FILE_VAR = "WAYBILL_NATS_TLS_KEY_FILE"


class TlsSettingsError(UserFacingError):
    """A CA, certificate or key file a client was given cannot be used."""


class TlsNotOffered(nats.errors.Error, UserFacingError):
    """A client that must use TLS met a server that offers none; nothing was sent to it.

    A :class:`nats.errors.Error`, so nats-py reports it like any failed
    attempt (error callback, next server, reconnect).
    """

    def __init__(self, message: str) -> None:
        UserFacingError.__init__(self, message)


@dataclass(frozen=True)
class TlsFiles:
    """A client's CA, certificate and key files, and how errors name each (variable or option).

    ``required``: the client must use TLS (the files were asked for). False
    for files a command only found in the state folder: then they are used
    when the server asks for TLS, and a plaintext server stays reachable.
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    ca_label: str = CA_FILE_VAR
    cert_label: str = CERT_FILE_VAR
    key_label: str = KEY_FILE_VAR
    required: bool = True

    @property
    def configured(self) -> bool:
        return any((self.ca_file, self.cert_file, self.key_file))


# Contexts made by client_context that present a client certificate, and those
# only used when the server asks for TLS (TlsFiles.required is False).
_WITH_CERTIFICATE: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
_IF_OFFERED: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()


def presents_certificate(context: ssl.SSLContext | None) -> bool:
    """Whether ``context`` (made by :func:`client_context`) presents a client certificate."""
    return context is not None and context in _WITH_CERTIFICATE


def demands_tls(context: ssl.SSLContext | None) -> bool:
    """Whether a client given ``context`` must use TLS (any context but a state-folder fallback)."""
    return context is not None and context not in _IF_OFFERED


def client_context(files: TlsFiles) -> ssl.SSLContext | None:
    """One SSLContext for a NATS client (None: no TLS settings); a one-line error when unusable."""
    if not files.configured:
        return None
    if bool(files.cert_file) != bool(files.key_file):
        given, missing = (
            (files.cert_label, files.key_label)
            if files.cert_file
            else (files.key_label, files.cert_label)
        )
        raise TlsSettingsError(
            f"{given} is set but {missing} is not: a client certificate needs both its "
            "certificate and its key file"
        )
    for label, path in (
        (files.ca_label, files.ca_file),
        (files.cert_label, files.cert_file),
        (files.key_label, files.key_file),
    ):
        if path and not os.path.isfile(path):
            raise TlsSettingsError(
                f"{label}={path!r} is not valid: no such file; point it at an existing file"
            )
        if path and not os.access(path, os.R_OK):
            raise TlsSettingsError(
                f"{label}={path!r} cannot be read by this user: fix its permissions"
            )
    try:
        context = ssl.create_default_context(cafile=files.ca_file or None)
    except ssl.SSLError as error:
        raise TlsSettingsError(
            f"{files.ca_label}={files.ca_file!r} is not a PEM CA certificate "
            f"({error.reason or error}): point it at the CA that signed the NATS server's "
            "certificate"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if files.cert_file and files.key_file:
        try:
            context.load_cert_chain(files.cert_file, files.key_file)
        except ssl.SSLError as error:
            raise TlsSettingsError(
                f"{files.cert_label}={files.cert_file!r} and {files.key_label}={files.key_file!r} "
                f"are not a PEM certificate and its matching key ({error.reason or error})"
            ) from None
        _WITH_CERTIFICATE.add(context)
    if not files.required:
        _IF_OFFERED.add(context)
    return context


def insist_on_tls(
    info: MutableMapping[str, Any], *, url: str, scheme: str, context: ssl.SSLContext | None
) -> None:
    """Before CONNECT: make a client that must use TLS upgrade, or refuse the server.

    ``info`` is the server's INFO, which nats-py reads next to decide whether
    to start TLS: a client with a ``tls://`` URL or TLS settings
    (:func:`demands_tls`) marks it ``tls_required`` when the server offers TLS
    (``tls_available``: it also takes plaintext), and raises
    :class:`TlsNotOffered` when the server has no TLS at all.
    """
    if scheme == "wss":  # TLS below the websocket, already there
        return
    why = (
        "its URL is tls://"
        if scheme == "tls"
        else f"it has TLS settings ({CA_FILE_VAR} or --tls-ca-file and the like)"
        if demands_tls(context)
        else None
    )
    if why is None:
        return
    if scheme == "ws":
        raise TlsNotOffered(
            f"NATS at {url} is a plaintext websocket but this client must use TLS ({why}): "
            "use a wss:// URL"
        )
    if info.get("tls_required") or info.get("tls_available"):
        info["tls_required"] = True
        return
    raise TlsNotOffered(
        f"NATS at {url} offers no TLS but this client must use TLS ({why}); nothing was sent: "
        "turn TLS on in the server (`waybill up --tls`, or a tls block in its config), or, "
        "for a server meant to be plaintext, use a nats:// URL without the TLS settings"
    )


def explain_tls_failure(
    error: BaseException, url: str, *, tls: ssl.SSLContext | None = None
) -> str | None:
    """One line saying what went wrong and what to do, when ``error`` is a TLS failure.

    ``tls`` is the client's context while it connects (None once connected): a
    server that verifies clients may just close the connection after the
    handshake (TLS 1.3) when none, or an untrusted one, is presented.
    """
    if isinstance(error, TlsNotOffered):
        return str(error)
    text = str(error).lower()
    # Closed by the other side once there (not refused: that is a server not running).
    closed = (
        isinstance(error, ConnectionResetError | ConnectionAbortedError | BrokenPipeError)
        or "connection lost" in text
        or "eof" in text
    )
    if isinstance(error, ssl.SSLCertVerificationError) or "certificate verify failed" in text:
        reason = getattr(error, "verify_message", None) or "certificate verify failed"
        return (
            f"NATS at {url} presented a certificate this client does not trust ({reason}): set "
            f"{CA_FILE_VAR} (or --tls-ca-file) to the CA that signed it; `waybill up --tls` keeps "
            "it in <state folder>/nats/tls/ca.pem"
        )
    if (
        "certificate required" in text
        or "bad certificate" in text
        or "unknown ca" in text
        or (tls is not None and closed)
    ):
        presented = (
            "the one this client presented is not"
            if presents_certificate(tls)
            else "this client presented none"
        )
        return (
            f"NATS at {url} refused the TLS connection: it requires a client certificate it "
            f"trusts and {presented}: set {CERT_FILE_VAR} and {KEY_FILE_VAR} (or --tls-cert-file "
            "and --tls-key-file) to one its CA signed; `waybill up --mtls` writes one per "
            "identity in <state folder>/nats/tls/clients"
        )
    if isinstance(error, ssl.SSLError) or "ssl" in text or "tls" in text:
        return (
            f"TLS with NATS at {url} failed ({error}): check {CA_FILE_VAR}, {CERT_FILE_VAR} and "
            f"{KEY_FILE_VAR} against the server's TLS settings"
        )
    return None
