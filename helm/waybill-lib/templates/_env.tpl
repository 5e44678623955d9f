{{/* Mount points of the files the chart gives a service. */}}
{{- define "waybill-lib.paths" -}}
identity: /etc/waybill/nats/identity
tls: /etc/waybill/nats/tls
jwks: /etc/waybill/api/jwks
revokedJti: /etc/waybill/api/revoked-jti
files: /etc/waybill/files
secrets: /etc/waybill/secrets
{{- end -}}

{{/*
The WAYBILL_* environment every container of the service gets (the service, its
provisioning Job and its test Pod): where NATS is, who the service is on it, TLS,
its settings. The service's own secrets and HTTP settings are added by the
workload (waybill-lib.serviceEnv).
*/}}
{{- define "waybill-lib.natsEnv" -}}
{{- $paths := fromYaml (include "waybill-lib.paths" .c) -}}
- name: NATS_URL
  value: {{ .c.v.nats.url | quote }}
{{- if .seedFile }}
- name: WAYBILL_NATS_NKEY_SEED_FILE
  value: {{ printf "%s/%s" $paths.identity .seedKey | quote }}
{{- end }}
{{- if .c.v.nats.tls.enabled }}
- name: WAYBILL_NATS_TLS_CA_FILE
  value: {{ printf "%s/%s" $paths.tls .c.v.nats.tls.caKey | quote }}
{{- if .c.v.nats.tls.mutual }}
- name: WAYBILL_NATS_TLS_CERT_FILE
  value: {{ printf "%s/%s" $paths.tls .c.v.nats.tls.certKey | quote }}
- name: WAYBILL_NATS_TLS_KEY_FILE
  value: {{ printf "%s/%s" $paths.tls .c.v.nats.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- range $var := keys .c.v.settings | sortAlpha }}
- name: {{ $var }}
  value: {{ get $.c.v.settings $var | toString | quote }}
{{- end }}
{{- end -}}

{{- define "waybill-lib.serviceEnv" -}}
{{- $c := . -}}
{{- $paths := fromYaml (include "waybill-lib.paths" $c) -}}
- name: WAYBILL_SERVICE
  value: {{ $c.name | quote }}
- name: WAYBILL_HTTP_HOST
  value: "0.0.0.0"
- name: WAYBILL_HTTP_PORT
  value: {{ $c.v.declared.port | int | toString | quote }}
- name: WAYBILL_PROVISION
  value: never
- name: WAYBILL_STATE_DIR
  value: {{ $c.v.persistence.mountPath | quote }}
{{ include "waybill-lib.natsEnv" (dict "c" $c "seedFile" $c.v.nats.identity.enabled "seedKey" $c.v.nats.identity.seedKey) }}
{{- if $c.v.declared.protectedRoutes }}
{{- with $c.v.api }}
{{- if .issuer }}
- name: WAYBILL_API_ISSUER
  value: {{ .issuer | quote }}
{{- end }}
{{- if .audience }}
- name: WAYBILL_API_AUDIENCE
  value: {{ .audience | quote }}
{{- end }}
{{- if .jwks.url }}
- name: WAYBILL_API_JWKS_URL
  value: {{ .jwks.url | quote }}
{{- else if .jwks.existingConfigMap }}
- name: WAYBILL_API_JWKS_FILE
  value: {{ printf "%s/%s" $paths.jwks .jwks.key | quote }}
{{- end }}
{{- if .revokedJti.existingConfigMap }}
- name: WAYBILL_API_REVOKED_JTI_FILE
  value: {{ printf "%s/%s" $paths.revokedJti .revokedJti.key | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- range $var := keys $c.v.secretFiles | sortAlpha }}
{{- $file := get $c.v.secretFiles $var }}
- name: {{ $var }}
  value: {{ printf "%s/%s/%s" $paths.files ($var | lower | replace "_" "-") $file.key | quote }}
{{- end }}
{{- if $c.v.declared.secretSettings }}
{{- /* Secrets are files, never environment (which `kubectl describe`, crash dumps and
       child processes may show): the service reads each from the mounted Secret. */}}
- name: WAYBILL_SECRETS_DIR
  value: {{ $paths.secrets | quote }}
{{- end }}
{{- if $c.v.otel.enabled }}
- name: OTEL_SERVICE_NAME
  value: {{ $c.name | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ required "otel.endpoint is required when otel.enabled is true" $c.v.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $c.v.otel.protocol | quote }}
- name: K8S_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: K8S_NAMESPACE_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ printf "service.namespace=waybill,service.version=%s,k8s.pod.name=$(K8S_POD_NAME),k8s.namespace.name=$(K8S_NAMESPACE_NAME)%s" (include "waybill-lib.version" $c) (ternary (printf ",%s" $c.v.otel.resourceAttributes) "" (ne $c.v.otel.resourceAttributes "")) | quote }}
{{- end }}
{{- with $c.v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
