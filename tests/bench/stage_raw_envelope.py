"""The baseline again, but speaking Waybill's wire format (opt-in: ``--stages raw-envelope``).

Raw nats-py as in :mod:`tests.bench.stage_raw`, except that the command is
read with ``waybill_contracts.decode`` (CloudEvents headers checked, context
built) and the acceptance goes out with ``new_context`` + ``encode`` (all ten
CloudEvents headers, ``Nats-Msg-Id`` among them). The difference between
this stage and ``raw`` is the price of the wire format itself; the difference
between it and ``runtime`` is the price of the runtime's machinery (tracing,
metrics, outcome handling, fetch scheduling).
"""

from __future__ import annotations

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from tests.bench.stage_raw import RawStage
from tests.bench.workload import accept, accepted_id
from waybill_contracts import SubjectMap, decode, encode, new_context
from waybill_contracts.commands import ReleaseToWarehouse

SOURCE = "wms-bridge"


class RawEnvelopeStage(RawStage):
    """Raw nats-py with the contracts' envelope on both sides."""

    name = "raw + envelope"

    def __init__(self, nats_url: str, tag: str) -> None:
        super().__init__(nats_url, tag)
        self._subjects = SubjectMap("bench")

    async def _handle(self, js: JetStreamContext, msg: Msg) -> None:
        decoded = decode(msg.subject, msg.headers, msg.data, self._subjects)
        command = decoded.message
        assert isinstance(command, ReleaseToWarehouse)
        accepted = accept(command)
        context = new_context(
            accepted,
            source=SOURCE,
            cause=decoded.context,
            message_id=accepted_id(decoded.context.id),
        )
        encoded = encode(accepted, context, self._subjects)
        await js.publish(self._output_subject, encoded.body, headers=dict(encoded.headers))
        await msg.ack()
