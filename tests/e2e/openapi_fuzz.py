"""Fuzzing a running service against its own OpenAPI document, with schemathesis.

Every operation of the document at ``<base_url>/openapi.json`` is called with
requests schemathesis makes from the document: valid ones, and (where the
operation takes parameters or a body) invalid ones. Each answer must not be a
server error and must fit the schema documented for its status. The number of
requests is bounded (``max_examples`` per operation and mode) and the
examples are derived from a fixed seed, so a run is repeatable.

schemathesis calls the service with blocking ``requests``: run
:func:`fuzz_service` in a thread (``asyncio.to_thread``) when the service
runs on the test's event loop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance

CHECKS = [not_a_server_error, response_schema_conformance]
"""No 5xx; every answer fits the schema documented for its status."""

Signer = Callable[[bytes], Mapping[str, str]]
"""The headers that sign a request body as a partner signs it."""


def _signing(sign: Signer) -> Callable[[Any], Any]:
    # A requests auth callable: it sees the prepared request, so it signs the very
    # bytes that are sent.
    def add_signature(request: Any) -> Any:
        body = request.body or b""
        request.headers.update(sign(body.encode() if isinstance(body, str) else body))
        return request

    return add_signature


@dataclass
class FuzzReport:
    """What one fuzz run called, and what the service answered."""

    operations: list[str] = field(default_factory=list)
    streams: list[str] = field(default_factory=list)
    """Operations answering an endless stream (server-sent events): not fuzzed (each call
    would wait for its timeout); their own tests read them."""
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)

    def answered(self, operation: str) -> set[int]:
        """The statuses ``operation`` answered."""
        return {status for (label, status) in self.statuses if label == operation}


def _strategies(
    operation: APIOperation[Any, Any, Any, Any], path_values: Mapping[str, str]
) -> list[st.SearchStrategy[Case[Any]]]:
    takes_input = bool(len(operation.path_parameters) or len(operation.query) or operation.body)
    modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if takes_input else [])
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    known = {
        name: value
        for name, value in path_values.items()
        if any(parameter.name == name for parameter in operation.path_parameters)
    }
    if known:
        # Also with a path the service knows (a real order, the webhook's token), so
        # the requests reach past the lookup to the handler's own input checks.
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=known) for mode in modes
        ]
    return strategies


def _streams(operation: APIOperation[Any, Any, Any, Any]) -> bool:
    # An event stream never ends: every fuzzed call would wait for its timeout.
    ok = operation.definition.raw.get("responses", {}).get("200", {})
    return "text/event-stream" in ok.get("content", {})


def fuzz_service(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    path_values: Mapping[str, str] | None = None,
    signers: Mapping[str, Signer] | None = None,
    max_examples: int = 25,
) -> FuzzReport:
    """Call every operation of the service at ``base_url`` with schemathesis's requests.

    ``headers`` go with every request (an ``Authorization: Bearer ...`` for
    routes that need a token); ``path_values`` are path parameters the service
    knows, tried besides generated ones; ``signers`` sign the bodies sent to
    an operation's path (``/webhooks/...``) as its partner does, in some of
    the requests, so those get past the signature check. Raises the first
    failed check, with the request that failed.
    """
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    sent = dict(headers or {})
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()  # an operation schemathesis cannot read: the document is wrong
        operation = result.ok()
        report.operations.append(operation.label)
        if _streams(operation):
            report.streams.append(operation.label)
            continue
        signer = (signers or {}).get(operation.path)
        sign = st.sampled_from([_signing(signer), None]) if signer else st.just(None)

        @hypothesis.settings(
            max_examples=max_examples,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        )
        @hypothesis.given(case=st.one_of(_strategies(operation, path_values or {})), auth=sign)
        def call(case: Case[Any], auth: Callable[[Any], Any] | None) -> None:
            response = case.call(base_url=base_url, headers=sent, timeout=30, auth=auth)
            report.statuses[(case.operation.label, response.status_code)] += 1
            case.validate_response(response, checks=CHECKS, headers=sent)

        call()
    return report
