{{/*
Entry points.

A service chart's only template is
  {{ include "waybill-lib.serviceChart" . }}
and renders its one service from its values (`declared:` names it).

The umbrella chart's only template is
  {{ include "waybill-lib.umbrellaChart" . }}
and renders every enabled entry of `components:`, each on top of `default:`.
*/}}
{{- define "waybill-lib.serviceChart" -}}
{{- $v := fromYaml (include "waybill-lib.values" (dict "root" . "layers" (list .Values))) -}}
{{- include "waybill-lib.component" (dict "root" . "name" $v.declared.name "v" $v) -}}
{{- end -}}

{{- define "waybill-lib.umbrellaChart" -}}
{{- $root := . -}}
{{- range $name := keys .Values.components | sortAlpha }}
{{- $component := get $root.Values.components $name -}}
{{- if $component.enabled }}
{{- $own := omit $component "enabled" -}}
{{- $v := fromYaml (include "waybill-lib.values" (dict "root" $root "layers" (list $root.Values.default $own))) -}}
{{- if ne $v.declared.name $name -}}
{{- fail (printf "components.%s describes service %s: keep the generated declared block under its own name" $name $v.declared.name) -}}
{{- end }}
{{ include "waybill-lib.component" (dict "root" $root "name" $name "v" $v) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Every object of one service. */}}
{{- define "waybill-lib.component" -}}
{{- $c := . -}}
{{- if not $c.v.declared -}}
{{- fail "values have no declared block: generate it with `waybill helm values`" -}}
{{- end }}
---
{{ include "waybill-lib.serviceAccount" $c }}
{{ include "waybill-lib.secrets" $c }}
---
{{ include "waybill-lib.service" $c }}
---
{{ include "waybill-lib.workload" $c }}
{{ include "waybill-lib.scaling" $c }}
{{ include "waybill-lib.networkPolicy" $c }}
{{ include "waybill-lib.serviceMonitor" $c }}
{{ include "waybill-lib.provisioning" $c }}
{{ include "waybill-lib.test" $c }}
{{- end -}}
