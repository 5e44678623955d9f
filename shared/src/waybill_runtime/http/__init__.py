"""The HTTP side of a service: health, readiness, metrics, problem-details errors, OpenAPI,
API access."""

from waybill_runtime.http.app import (
    MAX_BODY_KEY,
    METRICS_KEY,
    READINESS_KEY,
    SERVICE_KEY,
    CheckResult,
    ProbeCheck,
    ReadinessCheck,
    create_http_app,
    json_answer,
)
from waybill_runtime.http.auth import PRINCIPAL, ApiAccess, api_access, principal_of
from waybill_runtime.http.openapi import OPENAPI_PATH, openapi_document
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
    "OPENAPI_PATH",
    "PRINCIPAL",
    "PROBLEM_CONTENT_TYPE",
    "READINESS_KEY",
    "SERVICE_KEY",
    "ApiAccess",
    "BoundAddress",
    "CheckResult",
    "ProbeCheck",
    "ProblemError",
    "ReadinessCheck",
    "api_access",
    "create_http_app",
    "decode_json",
    "json_answer",
    "loggable_path",
    "openapi_document",
    "principal_of",
    "problem_middleware",
    "problem_response",
    "read_json",
    "read_json_body",
    "require_json_content",
    "serve_http",
]
