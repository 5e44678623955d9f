"""The OpenAPI 3.1 document of a service's HTTP API, made from its declaration.

Every service serves the probes (``/healthz``, ``/readyz``, ``/metrics``), this
document (``/openapi.json``) and the routes it declares (``routes=`` of its
:class:`~waybill_runtime.service.Service`). The document is made once from
those declared :class:`~waybill_runtime.declaration.Route` s, never written by
hand, so it cannot drift from what the service refuses to start without:

- a path's parameters come from its template (aiohttp's ``{ref:.+}`` becomes
  ``{ref}``), the query parameters from the fields of ``Route.query``;
- a request body from ``Route.request`` (for a partner's webhook, the type the
  service reads the partner's payload into), a success body from
  ``Route.response``; both as JSON Schema from msgspec;
- the errors every route may answer, as ``application/problem+json`` with one
  ``Problem`` schema: 400 always, 404 with path parameters, 413/415/422 with a
  body; 401 for a partner's bad signature and 503 (``Retry-After``) when the
  service cannot record a webhook now; for a route that needs a role
  (:mod:`waybill_runtime.http.auth`), the ``bearerAuth`` scheme, the role
  (``x-waybill-role``), 401, 403 and 503 (the token's keys cannot be read).

The tests fuzz every service against its document (schemathesis) and check
the document against the OpenAPI 3.1 specification.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from waybill_runtime.declaration import Route
from waybill_runtime.http.problem import PROBLEM_CONTENT_TYPE

__all__ = ["OPENAPI_PATH", "OPENAPI_VERSION", "openapi_document", "openapi_path"]

OPENAPI_PATH = "/openapi.json"
OPENAPI_VERSION = "3.1.0"

_COMPONENTS = "#/components/schemas/{name}"
_BEARER = "bearerAuth"
# aiohttp's {name} or {name:regex}; a regex may hold one level of braces (\d{3}).
_PATH_PARAMETER = re.compile(r"\{(?P<name>[A-Za-z_]\w*)(?::(?:[^{}]|\{[^{}]*\})*)?\}")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


# -- what the probes answer (the shapes of waybill_runtime.http.app's handlers) -------


class Health(msgspec.Struct, frozen=True):
    """The process answers: its event loop runs."""

    status: str
    service: str


class ReadinessCheckResult(msgspec.Struct, frozen=True):
    """One dependency the service needs before it takes work."""

    name: str
    ok: bool
    detail: str


class Readiness(msgspec.Struct, frozen=True):
    """Whether every dependency is usable now (503 when one is not)."""

    status: str
    service: str
    checks: list[ReadinessCheckResult]


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An error as RFC 9457 problem details; members beyond these may follow "
    "(invalid_params, errors, ...).",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}

_ERRORS = {
    400: "The request is malformed (a parameter, a cursor, the JSON).",
    401: "Not authenticated.",
    403: "Authenticated, but not allowed to do this.",
    404: "Nothing is there.",
    413: "The body is over the service's size limit.",
    415: "The body is not JSON.",
    422: "The JSON does not fit the expected shape; the problem names the field.",
    503: "Cannot be taken now; send it again after Retry-After.",
}


def openapi_path(path: str) -> str:
    """An aiohttp route path as an OpenAPI path: ``/orders/{ref:.+}`` → ``/orders/{ref}``."""
    return _PATH_PARAMETER.sub(lambda found: "{" + found.group("name") + "}", path)


def _path_parameters(path: str) -> list[str]:
    return [found.group("name") for found in _PATH_PARAMETER.finditer(path)]


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", openapi_path(path))
    return "_".join([method.lower(), *words]) or method.lower()


def _problem(status: int, description: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or _ERRORS[status],
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _COMPONENTS.format(name="Problem")}}},
    }
    if status == 503:
        response["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before sending again.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


_JSON = "application/json"
_FORM = "application/x-www-form-urlencoded"


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {_JSON: {"schema": schema}}


class _Schemas:
    """JSON Schemas of msgspec types, their shared definitions under components."""

    def __init__(self, types: Iterable[Any]) -> None:
        unique = list(dict.fromkeys(types))
        schemas, self.components = msgspec.json.schema_components(unique, ref_template=_COMPONENTS)
        self._by_type = dict(zip(unique, schemas, strict=True))

    def of(self, type_: Any) -> dict[str, Any]:
        """The schema of ``type_`` (a ``$ref`` for structs and enums); any JSON for None."""
        return {} if type_ is None else dict(self._by_type[type_])

    def fields_of(self, struct: type[msgspec.Struct]) -> tuple[dict[str, Any], set[str]]:
        """A struct's properties and required names (for query parameters, one each)."""
        definition = self.components[self._name(struct)]
        return dict(definition.get("properties", {})), set(definition.get("required", ()))

    def drop(self, struct: type[msgspec.Struct]) -> None:
        """Leave ``struct`` out of the components (its fields are described elsewhere)."""
        self.components.pop(self._name(struct), None)

    def _name(self, struct: type[msgspec.Struct]) -> str:
        return str(self._by_type[struct]["$ref"].rsplit("/", 1)[-1])


def _parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _path_parameters(route.path)
    ]
    if route.query is not None:
        properties, required = schemas.fields_of(route.query)
        for name, property_schema in properties.items():
            schema = dict(property_schema)
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required}
            if "description" in schema:
                parameter["description"] = schema.pop("description")
            parameters.append(parameter | {"schema": schema})
    return parameters


def _operation(route: Route, schemas: _Schemas) -> dict[str, Any]:
    method = route.method.upper()
    operation: dict[str, Any] = {
        "operationId": _operation_id(method, route.path),
        "summary": route.summary or f"{method} {openapi_path(route.path)}",
        "tags": [route.audience],
    }
    parameters = _parameters(route, schemas)
    if parameters:
        operation["parameters"] = parameters
    success: dict[str, Any] = {
        "description": "Done." if route.audience != "partner" else "Acknowledged.",
        "content": _json_content(schemas.of(route.response))
        if route.answers == _JSON
        else {route.answers: {"schema": {"type": "string"}}},
    }
    if route.form:
        # A browser's form post is answered with the page to go to next.
        success = {
            "description": "Done; the page to show next.",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    responses: dict[str, Any] = {
        # A partner's delivery is taken (202) or answered at once (200).
        "2XX" if route.audience == "partner" else "303" if route.form else "200": success,
        "400": _problem(400),
    }
    if _path_parameters(route.path):
        responses["404"] = _problem(404)
    if method in _BODY_METHODS:
        operation["requestBody"] = {
            "required": True,
            "content": {_FORM: {"schema": schemas.of(route.request)}}
            if route.form
            else _json_content(schemas.of(route.request)),
        }
        responses |= {str(s): _problem(s) for s in (413, 415, 422)}
    if route.audience == "partner":
        responses["401"] = _problem(401, "The partner's signature (or token) is missing or wrong.")
        responses["503"] = _problem(503)
    if route.role is not None:
        operation["security"] = [{_BEARER: []}]
        operation["x-waybill-role"] = route.role
        operation["description"] = (
            f"Needs a bearer token granting the {route.role} role (admin grants every role)."
        )
        responses["401"] = _problem(401, "No valid bearer token.")
        responses["403"] = _problem(403, "The token's role may not do this.")
        responses["503"] = _problem(503, "The keys that check tokens cannot be read now.")
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _probe(summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"tags": ["probe"], "summary": summary, "responses": responses}}


def _probe_paths(schemas: _Schemas) -> dict[str, Any]:
    readiness = _json_content(schemas.of(Readiness))
    return {
        "/healthz": _probe(
            "Liveness: the process answers",
            {"200": {"description": "Alive.", "content": _json_content(schemas.of(Health))}},
        ),
        "/readyz": _probe(
            "Readiness: every dependency is usable",
            {
                "200": {"description": "Ready to take work.", "content": readiness},
                "503": {"description": "A dependency is not usable now.", "content": readiness},
            },
        ),
        "/metrics": _probe(
            "Prometheus metrics",
            {
                "200": {
                    "description": "The service's metrics, Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        ),
        OPENAPI_PATH: _probe(
            "This document",
            {
                "200": {
                    "description": "The OpenAPI 3.1 document of the service's HTTP API.",
                    "content": _json_content({"type": "object"}),
                }
            },
        ),
    }


def openapi_document(
    *,
    service: str,
    version: str = "0",
    description: str = "",
    routes: Sequence[Route] = (),
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a service serving the probes and ``routes``."""
    schemas = _Schemas(
        [Health, Readiness]
        + [t for r in routes for t in (r.request, r.response, r.query) if t is not None]
    )
    paths = _probe_paths(schemas)
    for route in routes:
        path = paths.setdefault(openapi_path(route.path), {})
        path[route.method.lower()] = _operation(route, schemas)
    bodies = {t for r in routes for t in (r.request, r.response)}
    for query in {r.query for r in routes if r.query is not None} - bodies:
        schemas.drop(query)  # its fields are the query parameters
    components: dict[str, Any] = {
        "schemas": dict(sorted({**schemas.components, "Problem": PROBLEM_SCHEMA}.items()))
    }
    if any(route.role is not None for route in routes):
        components["securitySchemes"] = {
            _BEARER: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A token naming the caller and its role (viewer, operator, admin).",
            }
        }
    info: dict[str, Any] = {"title": service, "version": version}
    if description:
        info["description"] = description
    return {"openapi": OPENAPI_VERSION, "info": info, "paths": paths, "components": components}
