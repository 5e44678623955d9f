"""The HTTP side of a service: health, readiness, metrics, problem-details errors."""

from waybill_runtime.http.app import (
    MAX_BODY_KEY,
    METRICS_KEY,
    READINESS_KEY,
    SERVICE_KEY,
    CheckResult,
    ProbeCheck,
    ReadinessCheck,
    create_http_app,
)
from waybill_runtime.http.problem import (
    PROBLEM_CONTENT_TYPE,
    ProblemError,
    decode_json,
    problem_middleware,
    problem_response,
    read_json,
    read_json_body,
    require_json_content,
)
from waybill_runtime.http.redaction import loggable_path
from waybill_runtime.http.server import BoundAddress, serve_http

__all__ = [
    "MAX_BODY_KEY",
    "METRICS_KEY",
    "PROBLEM_CONTENT_TYPE",
    "READINESS_KEY",
    "SERVICE_KEY",
    "BoundAddress",
    "CheckResult",
    "ProbeCheck",
    "ProblemError",
    "ReadinessCheck",
    "create_http_app",
    "decode_json",
    "loggable_path",
    "problem_middleware",
    "problem_response",
    "read_json",
    "read_json_body",
    "require_json_content",
    "serve_http",
]
