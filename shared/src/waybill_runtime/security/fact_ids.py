"""Message ids of observed facts that nobody outside the service can predict.

A fact seen from outside (a webhook, a poll) gets an id derived from the fact
(:func:`waybill_contracts.envelope.fact_id`), so JetStream drops its second
observation. JetStream's duplicate window is per stream, not per subject, so an
id anyone can compute can be squatted: a client allowed to publish any subject
of the events stream publishes garbage under the id of a fact that is about to
be observed, and the genuine event is then dropped as a duplicate. Keying the
id with a secret of the observing service (HMAC) closes that: only the service
itself (all its replicas) can compute it.

The key is ``WAYBILL_FACT_ID_KEY`` when set (stable across key rotations, what a
deployment with replicas should set), else derived from the service's NATS
identity seed, which every replica shares. Without either there is no identity,
and so no permission that could keep a squatter out in the first place.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from waybill_runtime.settings import RuntimeSettings, SettingsError

# Separates this use of a seed from any other: the derived key reveals nothing of the seed.
_DERIVATION_LABEL = b"waybill fact ids v1"
_CREDS_SEED_MARK = "-----BEGIN USER NKEY SEED-----"


def _seed_of(path: Path) -> bytes:
    """The nkey seed in a seed file or a .creds file (whose seed follows its marker line)."""
    try:
        text = path.read_text()
    except OSError as error:
        raise SettingsError(
            f"cannot read {path} to key fact ids ({error.strerror or error}): check the "
            "identity settings (WAYBILL_NATS_NKEY_SEED_FILE / WAYBILL_NATS_CREDENTIALS_FILE)"
        ) from None
    if _CREDS_SEED_MARK in text:
        text = text.split(_CREDS_SEED_MARK, 1)[1]
    for line in text.splitlines():
        if line.strip().startswith("SU"):
            return line.strip().encode()
    raise SettingsError(
        f"{path} holds no user nkey seed to key fact ids with: point the identity settings "
        "at the service's seed or .creds file, or set WAYBILL_FACT_ID_KEY"
    )


def fact_id_key(settings: RuntimeSettings) -> bytes | None:
    """The key this service's fact ids are made with (None: no key, ids as derived)."""
    if settings.fact_id_key:
        return settings.fact_id_key.encode()
    identity = settings.nats_nkey_seed_file or settings.nats_credentials_file
    if not identity:
        return None
    return hmac.new(_seed_of(Path(identity)), _DERIVATION_LABEL, hashlib.sha256).digest()


def keyed_fact_id(key: bytes, fact_id: str) -> str:
    """The id a fact is published under: as long as a fact id, unpredictable without ``key``."""
    return hmac.new(key, fact_id.encode(), hashlib.sha256).hexdigest()[:32]
