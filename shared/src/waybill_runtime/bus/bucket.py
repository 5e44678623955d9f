"""KV buckets whose writes and reads skip nats-py's generic request path.

An order costs the mesh about sixty KV writes and a score of reads (the
bench's ``--e2e-traffic``). nats-py sends each through ``Client.request``: a
NUID token, a future with a done-callback, an ``asyncio.wait_for``, the ack
read with ``json`` into a dataclass; a read (``STREAM.MSG.GET``) also decodes
base64 in Python and parses the stored headers with the ``email`` package.
:class:`KvBucket` is nats-py's ``KeyValue`` (callers see the same methods,
entries and errors) whose writes go through the publisher's
:class:`~waybill_runtime.bus.publish_acks.PublishAcks` (one dict entry and
one timer each, the ack read by msgspec) and whose reads are the same
request, answered by the same server API, read by msgspec.

Nothing changes on the wire: the same subjects, headers and bodies, so what
the server checks (the expected last revision, per-message TTLs) and answers
is as before. Watches and key listings stay nats-py's.
"""

from __future__ import annotations

import msgspec
from nats.errors import NoRespondersError
from nats.js.api import Header
from nats.js.errors import (
    APIError,
    InvalidKeyError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, MSG_ROLLUP_SUBJECT, KeyValue, _is_key_valid

from waybill_runtime.bus.publish_acks import PublishAcks, read_ack, read_answer

__all__ = ["KvBucket"]

# Header names read once: an enum member's ``.value`` is a Python call per write.
_EXPECTED_LAST_SUBJECT_SEQUENCE = Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value
_MSG_TTL = Header.MSG_TTL.value
_ROLLUP = Header.ROLLUP.value
_KV_OP = KV_OP.encode()

_WRONG_LAST_SEQUENCE = (10071, 10164)
"""JetStream's error codes for a write whose expected last revision is not the key's."""


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str | None = None


class _StoredMessage(msgspec.Struct):
    subject: str
    seq: int
    hdrs: bytes | None = None  # base64 in the JSON: msgspec decodes it
    data: bytes | None = None


class _MessageGot(msgspec.Struct):
    message: _StoredMessage | None = None
    error: _ApiError | None = None


_GOT = msgspec.json.Decoder(_MessageGot)


def _operation(headers: bytes | None) -> str | None:
    """The ``KV-Operation`` header of a stored entry (DEL, PURGE), if any."""
    if not headers or _KV_OP not in headers:  # most entries: no operation to look for
        return None
    for line in headers.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().decode() == KV_OP:
            return value.strip().decode()
    return None


class KvBucket(KeyValue):
    """nats-py's ``KeyValue`` with writes and reads through one reply subscription."""

    def __init__(self, kv: KeyValue, replies: PublishAcks, *, timeout_s: float) -> None:
        super().__init__(
            name=kv._name, stream=kv._stream, pre=kv._pre, js=kv._js, direct=kv._direct
        )
        self._replies = replies
        self._timeout_s = timeout_s
        self._get_subject = f"{kv._js._prefix}.STREAM.MSG.GET.{kv._stream}"

    # Writes: put, update and create (nats-py's create calls _update), delete, purge.

    async def put(self, key: str, value: bytes, validate_keys: bool = True) -> int:
        if validate_keys and not _is_key_valid(key):
            raise InvalidKeyError(key)
        return await self._write(key, value, {})

    async def _update(
        self,
        key: str,
        value: bytes,
        last: int | None = None,
        validate_keys: bool = True,
        msg_ttl: float | None = None,
    ) -> int:
        # ``update`` and ``create`` (and the runtime's ``write_expiring``) come here.
        if validate_keys and not _is_key_valid(key):
            raise InvalidKeyError(key)
        headers = {_EXPECTED_LAST_SUBJECT_SEQUENCE: str(last or 0)}
        if msg_ttl is not None:
            headers[_MSG_TTL] = str(int(msg_ttl))  # as nats-py writes it
        try:
            return await self._write(key, value, headers)
        except APIError as error:
            if error.err_code in _WRONG_LAST_SEQUENCE:
                raise KeyWrongLastSequenceError(description=error.description) from None
            raise

    async def delete(
        self,
        key: str,
        last: int | None = None,
        validate_keys: bool = True,
        msg_ttl: float | None = None,
    ) -> bool:
        if validate_keys and not _is_key_valid(key):
            raise InvalidKeyError(key)
        headers = {KV_OP: KV_DEL}
        if last and last > 0:
            headers[_EXPECTED_LAST_SUBJECT_SEQUENCE] = str(last)
        await self._write(key, b"", headers)
        return True

    async def purge(self, key: str, msg_ttl: float | None = None) -> bool:
        headers = {KV_OP: KV_PURGE, _ROLLUP: MSG_ROLLUP_SUBJECT}
        if msg_ttl is not None:
            headers[_MSG_TTL] = str(int(msg_ttl))
        await self._write(key, b"", headers)
        return True

    async def _write(self, key: str, value: bytes, headers: dict[str, str]) -> int:
        reply = await self._replies.request(
            f"{self._pre}{key}", value, headers or None, timeout_s=self._timeout_s
        )
        return read_ack(reply).seq

    async def _get(self, key: str, revision: int | None = None) -> KeyValue.Entry:
        if self._direct:
            # Direct gets answer with headers that nats-py's client parses already.
            return await super()._get(key, revision)
        subject = f"{self._pre}{key}"
        request = {"seq": revision} if revision else {"last_by_subj": subject}
        reply = await self._replies.request(
            self._get_subject, msgspec.json.encode(request), None, timeout_s=self._timeout_s
        )
        # Nobody answering for the stream (JetStream starting, a leader being elected) is
        # what nats-py's request raises, so callers retry it as before.
        got = read_answer(reply, _GOT.decode, "stream message answer", nobody=NoRespondersError)
        if got.error is not None:
            try:
                APIError.from_error(msgspec.structs.asdict(got.error))  # raises its subclass
            except NotFoundError:
                raise KeyNotFoundError from None
        stored = got.message
        if stored is None:
            raise APIError(description="a stream message answer without its message")
        if stored.subject != subject:
            raise KeyNotFoundError(message=f"expected '{subject}', but got '{stored.subject}'")
        entry = KeyValue.Entry(
            bucket=self._name,
            key=key,
            value=stored.data or None,  # as nats-py: None when empty
            revision=stored.seq,
            delta=None,
            created=None,
            operation=None,
        )
        operation = _operation(stored.hdrs)
        if operation in (KV_DEL, KV_PURGE):
            raise KeyDeletedError(entry, operation)
        return entry
