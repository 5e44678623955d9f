"""``values.schema.json`` of the service charts and the umbrella chart.

One schema of a service's values (the keys of the library chart's defaults,
helm/waybill-lib/templates/_defaults.tpl), narrowed per service by its
declaration: `settings` may name only the variables the service reads,
`secrets` only its secret settings, `secretFiles` only its file settings,
`partners` only its partners. A typo in a values file is refused by
`helm install` instead of being ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from waybill_runtime.declaration import DeclaredSetting
from waybill_runtime.deploy.chart_values import DeclaredValues

__all__ = ["component_schema", "service_chart_schema", "umbrella_chart_schema"]

_SCHEMA = "http://json-schema.org/draft-07/schema#"

Schema = dict[str, Any]

_STRING: Schema = {"type": "string"}
_BOOL: Schema = {"type": "boolean"}
_INT: Schema = {"type": "integer", "minimum": 0}
_MAP: Schema = {"type": "object"}
_LIST: Schema = {"type": "array"}
_LABELS: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
_QUANTITY: Schema = {"type": ["string", "number"]}
_SETTING_VALUE: Schema = {"type": ["string", "number", "boolean"]}
# Keys Helm itself puts in a chart's values: globals, and the library chart's (empty) own.
_HELM_KEYS: dict[str, Schema] = {"global": _MAP, "waybill-lib": _MAP}


def _obj(properties: Mapping[str, Schema], *, description: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": dict(properties),
    }
    if description:
        schema["description"] = description
    return schema


def _enum_keys(names: Sequence[str], value: Schema) -> Schema:
    """A map whose keys are among ``names`` (none allowed when ``names`` is empty)."""
    if not names:
        return {"type": "object", "maxProperties": 0}
    return {"type": "object", "propertyNames": {"enum": list(names)}, "additionalProperties": value}


def _resources() -> Schema:
    # Each layer may set part of it; the library refuses a workload left without
    # requests and limits after the merge.
    amounts = _obj({"cpu": _QUANTITY, "memory": _QUANTITY, "ephemeral-storage": _QUANTITY})
    return _obj({"requests": amounts, "limits": amounts})


def _probe() -> Schema:
    return _obj(
        {
            "path": {"type": "string", "pattern": "^/"},
            "periodSeconds": {"type": "integer", "minimum": 1},
            "timeoutSeconds": {"type": "integer", "minimum": 1},
            "failureThreshold": {"type": "integer", "minimum": 1},
        }
    )


def _seed_secret(*, with_seed: bool) -> Schema:
    properties: dict[str, Schema] = {
        "enabled": _BOOL,
        "existingSecret": _STRING,
        "seedKey": {"type": "string", "minLength": 1},
    }
    if with_seed:
        properties["seed"] = {
            "type": "string",
            "description": "An nkey user seed (SU...); the chart creates the Secret",
            "pattern": "^(SU[A-Z2-7]+)?$",
        }
    return _obj(properties)


def _egress_rule() -> Schema:
    return _obj({"to": _LIST, "ports": _LIST})


def _security_context() -> Schema:
    # Hardening the chart relies on may not be switched off through values.
    return {
        "type": "object",
        "properties": {
            "runAsNonRoot": {"const": True},
            "runAsUser": {"type": "integer", "minimum": 1},
            "readOnlyRootFilesystem": {"const": True},
            "allowPrivilegeEscalation": {"const": False},
            "privileged": {"const": False},
        },
    }


def component_schema(
    *,
    settings: Sequence[DeclaredSetting],
    secret_settings: Sequence[str],
    file_settings: Sequence[str],
    partners: Sequence[str],
) -> dict[str, Schema]:
    """The properties of one service's values (without `declared`)."""
    settings_schema: Schema = {
        "type": "object",
        "description": "Non-secret WAYBILL_* settings of the service, by environment variable",
        "additionalProperties": False,
        "properties": {
            s.env_var: {**_SETTING_VALUE, "description": s.description} for s in settings
        },
    }
    return {
        "image": _obj(
            {
                "registry": _STRING,
                "repository": _STRING,
                "tag": _STRING,
                "digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            }
        ),
        "imagePullSecrets": _LIST,
        "nameOverride": _STRING,
        "fullnameOverride": _STRING,
        "workload": {"enum": ["Deployment", "StatefulSet"]},
        "replicas": _INT,
        "revisionHistoryLimit": _INT,
        "settings": settings_schema,
        "extraEnv": {
            "type": "array",
            "items": {"type": "object", "required": ["name"]},
        },
        "nats": _obj(
            {
                "url": {"type": "string", "pattern": r"^((nats|tls|ws|wss)://\S+,?)+$"},
                "identity": _seed_secret(with_seed=True),
                "tls": _obj(
                    {
                        "enabled": _BOOL,
                        "existingSecret": _STRING,
                        "caKey": _STRING,
                        "mutual": _BOOL,
                        "certKey": _STRING,
                        "keyKey": _STRING,
                    }
                ),
            }
        ),
        "secrets": _obj(
            {
                "existingSecret": _STRING,
                "keys": _enum_keys(secret_settings, _STRING),
                "values": _enum_keys(secret_settings, _SETTING_VALUE),
            },
            description="Env-only secret settings (declared.secretSettings), from one Secret",
        ),
        "secretFiles": _enum_keys(
            file_settings,
            {
                **_obj({"existingSecret": {"type": "string", "minLength": 1}, "key": _STRING}),
                "required": ["existingSecret", "key"],
            },
        ),
        "api": _obj(
            {
                "issuer": _STRING,
                "audience": _STRING,
                "jwks": _obj(
                    {
                        "url": {"type": "string", "pattern": r"^(https?://\S+)?$"},
                        "existingConfigMap": _STRING,
                        "key": _STRING,
                    }
                ),
                "revokedJti": _obj({"existingConfigMap": _STRING, "key": _STRING}),
            }
        ),
        "otel": _obj(
            {
                "enabled": _BOOL,
                "endpoint": _STRING,
                "protocol": {"enum": ["grpc", "http/protobuf", "http/json"]},
                "resourceAttributes": _STRING,
            }
        ),
        "service": _obj(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "annotations": _LABELS,
            }
        ),
        "resources": _resources(),
        "probes": {
            **_obj({"startup": _probe(), "liveness": _probe(), "readiness": _probe()}),
        },
        "podSecurityContext": _security_context(),
        "securityContext": _security_context(),
        "shutdown": _obj({"preStopSleepSeconds": _INT, "graceMarginSeconds": _INT}),
        "tmpSizeLimit": _QUANTITY,
        "persistence": _obj(
            {
                "enabled": _BOOL,
                "mountPath": {"type": "string", "pattern": "^/"},
                "size": _QUANTITY,
                "storageClassName": _STRING,
                "accessModes": {"type": "array", "items": _STRING, "minItems": 1},
            }
        ),
        "pdb": _obj({"enabled": _BOOL, "maxUnavailable": {"type": ["integer", "string"]}}),
        "hpa": _obj(
            {
                "enabled": _BOOL,
                "minReplicas": {"type": "integer", "minimum": 1},
                "maxReplicas": {"type": "integer", "minimum": 1},
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1},
            }
        ),
        "keda": _obj(
            {
                "enabled": _BOOL,
                "minReplicas": _INT,
                "maxReplicas": {"type": "integer", "minimum": 1},
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": _INT,
                "lagThreshold": {"type": "integer", "minimum": 1},
                "natsServerMonitoringEndpoint": {"type": "string", "minLength": 1},
                "account": _STRING,
                "useHttps": _BOOL,
                "targetCPUUtilizationPercentage": {"type": "integer", "minimum": 1},
            }
        ),
        "topologySpread": _obj(
            {
                "enabled": _BOOL,
                "maxSkew": {"type": "integer", "minimum": 1},
                "whenUnsatisfiable": {"enum": ["ScheduleAnyway", "DoNotSchedule"]},
                "topologyKeys": {"type": "array", "items": _STRING},
            }
        ),
        "networkPolicy": _obj(
            {
                "enabled": _BOOL,
                "ingressFrom": _LIST,
                "metricsFrom": _LIST,
                "dns": _egress_rule(),
                "nats": _egress_rule(),
                "otlp": _egress_rule(),
                "partnerDefaults": _egress_rule(),
            }
        ),
        "partners": _enum_keys(partners, _obj({"egress": _egress_rule()})),
        "serviceMonitor": _obj(
            {"enabled": _BOOL, "interval": _STRING, "scrapeTimeout": _STRING, "labels": _LABELS}
        ),
        "serviceAccount": _obj({"create": _BOOL, "name": _STRING, "annotations": _LABELS}),
        "podAnnotations": _LABELS,
        "podLabels": _LABELS,
        "nodeSelector": _LABELS,
        "tolerations": _LIST,
        "affinity": _MAP,
        "priorityClassName": _STRING,
        "provisioning": _obj(
            {
                "enabled": _BOOL,
                "identity": _seed_secret(with_seed=True),
                "backoffLimit": _INT,
                "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
                "ttlSecondsAfterFinished": _INT,
                "resources": _resources(),
            }
        ),
        "test": _obj(
            {
                "enabled": _BOOL,
                "identity": _seed_secret(with_seed=False),
                "timeoutSeconds": {"type": "number", "exclusiveMinimum": 0},
                "resources": _resources(),
            }
        ),
    }


def _declared_schema(declared: DeclaredValues) -> Schema:
    # Generated from the declaration: a values file may not change what the code is.
    return {
        "type": "object",
        "description": "Generated from the service's declaration (`waybill helm values`)",
        "properties": {"name": {"const": declared.name}, "port": {"const": declared.port}},
        "required": ["name", "port"],
    }


def service_chart_schema(declared: DeclaredValues, settings: Sequence[DeclaredSetting]) -> Schema:
    """The values schema of one service's own chart."""
    properties = component_schema(
        settings=settings,
        secret_settings=list(declared.secret_settings),
        file_settings=declared.file_settings,
        partners=declared.partners,
    )
    properties["declared"] = _declared_schema(declared)
    properties.update(_HELM_KEYS)
    return {
        "$schema": _SCHEMA,
        "title": f"Values of the {declared.name} chart",
        "type": "object",
        "additionalProperties": False,
        "required": ["declared"],
        "properties": properties,
    }


def _observability_schema() -> Schema:
    """The umbrella's ``observability:`` (dashboards and alerting rules of deploy/observability)."""
    labels: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
    return _obj(
        {
            "dashboards": _obj(
                {"enabled": _BOOL, "labels": labels, "namespace": {"type": "string"}},
                description="The Grafana dashboards as ConfigMaps for Grafana's sidecar",
            ),
            "prometheusRule": _obj(
                {"enabled": _BOOL, "labels": labels},
                description="The alerting rules as a PrometheusRule (Prometheus Operator)",
            ),
        },
        description="Dashboards and alerts (deploy/observability); off by default",
    )


def umbrella_chart_schema(
    components: Mapping[str, tuple[DeclaredValues, Sequence[DeclaredSetting]]],
) -> Schema:
    """The umbrella's schema: `default` for every component, `components.<service>` each."""
    union: dict[str, DeclaredSetting] = {}
    for _, settings in components.values():
        for setting in settings:
            union.setdefault(setting.env_var, setting)
    default = component_schema(
        settings=[union[name] for name in sorted(union)],
        secret_settings=sorted({s for d, _ in components.values() for s in d.secret_settings}),
        file_settings=sorted({f for d, _ in components.values() for f in d.file_settings}),
        partners=sorted({p for d, _ in components.values() for p in d.partners}),
    )
    per_component: dict[str, Schema] = {}
    for name, (declared, settings) in components.items():
        properties = component_schema(
            settings=settings,
            secret_settings=list(declared.secret_settings),
            file_settings=declared.file_settings,
            partners=declared.partners,
        )
        properties["enabled"] = _BOOL
        properties["declared"] = _declared_schema(declared)
        per_component[name] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["declared"],
            "properties": properties,
        }
    return {
        "$schema": _SCHEMA,
        "title": "Values of the waybill umbrella chart",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "default": {
                "type": "object",
                "description": "Values every component starts from",
                "additionalProperties": False,
                "properties": default,
            },
            "components": _obj(per_component, description="One entry per service"),
            "observability": _observability_schema(),
            **_HELM_KEYS,
        },
    }
