{{- define "waybill-lib.componentNotes" -}}
{{- $c := . -}}
{{- $kind := ternary "statefulset" "deployment" (eq $c.v.workload "StatefulSet") -}}
  {{ $c.name }}: kubectl -n {{ $c.root.Release.Namespace }} rollout status {{ $kind }}/{{ include "waybill-lib.fullname" $c }}
{{- if and $c.v.declared.protectedRoutes (not (or $c.v.api.jwks.url $c.v.api.jwks.existingConfigMap)) }}
  WARNING: {{ $c.name }} serves API routes and has no key source: it refuses to start until
  api.jwks.url (or api.jwks.existingConfigMap), api.issuer and api.audience are set.
{{- end }}
{{- end -}}

{{- define "waybill-lib.notes" -}}
{{- $v := fromYaml (include "waybill-lib.values" (dict "root" . "layers" (list .Values))) -}}
{{ $v.declared.name }} {{ $v.declared.version }} is installed as release {{ .Release.Name }}.

{{ include "waybill-lib.componentNotes" (dict "root" . "name" $v.declared.name "v" $v) }}

Check it answers on NATS ($SRV.PING, as the operator identity):
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}
{{- end -}}

{{- define "waybill-lib.umbrellaNotes" -}}
{{- $root := . -}}
Waybill {{ .Chart.AppVersion }} is installed as release {{ .Release.Name }}:
{{ range $name := keys .Values.components | sortAlpha }}
{{- $component := get $root.Values.components $name -}}
{{- if $component.enabled }}
{{- $v := fromYaml (include "waybill-lib.values" (dict "root" $root "layers" (list $root.Values.default (omit $component "enabled")))) }}
{{ include "waybill-lib.componentNotes" (dict "root" $root "name" $name "v" $v) }}
{{- end }}
{{- end }}

Check every service answers on NATS ($SRV.PING, as the operator identity):
  helm test {{ .Release.Name }} -n {{ .Release.Namespace }}
{{- end -}}
