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
)
from waybill_runtime.http.auth import PRINCIPAL, ApiAccess, api_access, principal_of
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
    "openapi_document",
    "principal_of",
    "problem_middleware",
    "problem_response",
    "read_json",
    "serve_http",
]
