"""The return workflow's messages (issue 20): each names its return and its order, and bad
quantities are refused when a message is read, naming what is wrong."""

from __future__ import annotations

import msgspec
import pytest

from waybill_contracts import SubjectMap, decode, encode, new_context, order_ref_of
from waybill_contracts.errors import ContractError
from waybill_contracts.events.returns import RETURN_EVENT_TYPES
from waybill_contracts.examples import ORDER_REF, RETURN_ID, example_of
from waybill_contracts.messages import Message
from waybill_contracts.operations import RetryReturnStep
from waybill_contracts.return_commands import RETURN_COMMAND_TYPES, ExpectReturn
from waybill_contracts.returns import InspectedLine

RETURN_MESSAGES: tuple[type[Message], ...] = (*RETURN_EVENT_TYPES, *RETURN_COMMAND_TYPES)


@pytest.mark.parametrize("message_type", RETURN_MESSAGES, ids=lambda t: t.__name__)
def test_every_return_message_is_one_trace_per_return_on_its_orders_timeline(
    message_type: type[Message],
) -> None:
    message = example_of(message_type)
    context = new_context(message, source="orchestrator")
    assert context.correlation_id == RETURN_ID  # one trace per return
    assert order_ref_of(message) == ORDER_REF  # the auditor files it under the order


def test_an_operators_retry_is_correlated_with_its_return() -> None:
    action = example_of(RetryReturnStep)
    assert new_context(action, source="auditor").correlation_id == RETURN_ID


def _reencoded(message: Message, **field_changes: object) -> bytes:
    raw = msgspec.to_builtins(message)
    raw.update(field_changes)
    return msgspec.json.encode(raw)


def test_a_return_line_of_no_quantity_is_refused_naming_it() -> None:
    command = example_of(ExpectReturn)
    encoded = encode(command, new_context(command, source="orchestrator"), SubjectMap())
    line = msgspec.to_builtins(command.lines[0])
    line["quantity"]["value"] = "0"
    body = _reencoded(command, lines=[line])
    with pytest.raises(ContractError, match="quantity must be positive"):
        decode(encoded.subject, dict(encoded.headers), body, SubjectMap())


def test_an_inspected_line_cannot_have_negative_quantities() -> None:
    line = example_of(ExpectReturn).lines[0]
    with pytest.raises(ValueError, match="cannot be negative"):
        InspectedLine(
            line_no=1,
            sku=line.sku,
            resellable=line.quantity,
            damaged=msgspec.structs.replace(line.quantity, value=-line.quantity.value),
            missing=line.quantity,
        )
