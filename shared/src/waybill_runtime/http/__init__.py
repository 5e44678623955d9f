"""The HTTP side of a service: health, readiness, metrics, problem-details errors, OpenAPI."""

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
from waybill_runtime.http.openapi import OPENAPI_PATH, openapi_document
from waybill_runtime.http.problem import (
    PROBLEM_CONTENT_TYPE,
    ProblemError,
    problem_middleware,
    problem_response,
    read_json,
)
from waybill_runtime.http.server import BoundAddress, serve_http

__all__ = [
    "MAX_BODY_KEY",
    "METRICS_KEY",
    "OPENAPI_PATH",
    "PROBLEM_CONTENT_TYPE",
    "READINESS_KEY",
    "SERVICE_KEY",
    "BoundAddress",
    "CheckResult",
    "ProbeCheck",
    "ProblemError",
    "ReadinessCheck",
    "create_http_app",
    "openapi_document",
    "problem_middleware",
    "problem_response",
    "read_json",
    "serve_http",
]
