{{/*
Effective values of one service: the library defaults, then each layer of
`layers` (a list of maps, later ones win), merged key by key. Unlike sprig's
merge, a false, 0 or empty value in a later layer wins too (so
`hpa.enabled: false` turns the HPA off), and lists are replaced, never joined.
Returns the merged values as YAML (read back with fromYaml).
*/}}
{{- define "waybill-lib.values" -}}
{{- $merged := fromYaml (include "waybill-lib.defaults" .root) -}}
{{- range .layers -}}
{{- include "waybill-lib.mergeInto" (dict "dst" $merged "src" .) -}}
{{- end -}}
{{- toYaml $merged -}}
{{- end -}}

{{/* Merge map `src` into map `dst` in place (see waybill-lib.values). */}}
{{- define "waybill-lib.mergeInto" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- $current := index $dst $key -}}
{{- if and (kindIs "map" $value) (kindIs "map" $current) -}}
{{- include "waybill-lib.mergeInto" (dict "dst" $current "src" $value) -}}
{{- else if kindIs "map" $value -}}
{{- $_ := set $dst $key (deepCopy $value) -}}
{{- else -}}
{{- $_ := set $dst $key $value -}}
{{- end -}}
{{- end -}}
{{- end -}}
