{{/*
Names and labels. Every template below takes the component context `$c`:
  root  the chart's top-level context (.Release, .Chart, .Capabilities)
  name  the service's name (declared.name)
  v     the service's effective values (waybill-lib.values)
*/}}

{{/* <release>-<service>, or the release name alone when it already names the service. */}}
{{- define "waybill-lib.fullname" -}}
{{- if .v.fullnameOverride -}}
{{- .v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .name .v.nameOverride -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A name derived from the fullname: (dict "c" $c "suffix" "nats"). */}}
{{- define "waybill-lib.nameWith" -}}
{{- $full := include "waybill-lib.fullname" .c -}}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .suffix)))) .suffix | replace "--" "-" -}}
{{- end -}}

{{- define "waybill-lib.version" -}}
{{- default .v.declared.version .v.image.tag -}}
{{- end -}}

{{/*
The service's own pods. The component keeps its provisioning Job and test Pod
(same name and instance) out of its Deployment, Service, PDB, HPA and spread.
*/}}
{{- define "waybill-lib.selectorLabels" -}}
app.kubernetes.io/name: {{ default .name .v.nameOverride | quote }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: service
{{- end -}}

{{- define "waybill-lib.labels" -}}
{{ include "waybill-lib.selectorLabels" . }}
app.kubernetes.io/version: {{ include "waybill-lib.version" . | trunc 63 | quote }}
app.kubernetes.io/part-of: waybill
app.kubernetes.io/managed-by: {{ .root.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | quote }}
{{- end -}}

{{/* Labels of a helper pod (provisioning, test): same release and service, another component. */}}
{{- define "waybill-lib.helperLabels" -}}
app.kubernetes.io/name: {{ default .c.name .c.v.nameOverride | quote }}
app.kubernetes.io/instance: {{ .c.root.Release.Name | quote }}
app.kubernetes.io/version: {{ include "waybill-lib.version" .c | trunc 63 | quote }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: waybill
app.kubernetes.io/managed-by: {{ .c.root.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .c.root.Chart.Name .c.root.Chart.Version | replace "+" "_" | trunc 63 | quote }}
{{- end -}}

{{- define "waybill-lib.image" -}}
{{- $repository := default (printf "waybill/%s" .name) .v.image.repository -}}
{{- if .v.image.registry -}}{{- $repository = printf "%s/%s" .v.image.registry $repository -}}{{- end -}}
{{- if .v.image.digest -}}
{{- printf "%s:%s@%s" $repository (include "waybill-lib.version" .) .v.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (include "waybill-lib.version" .) -}}
{{- end -}}
{{- end -}}

{{- define "waybill-lib.serviceAccountName" -}}
{{- if .v.serviceAccount.create -}}
{{- default (include "waybill-lib.fullname" .) .v.serviceAccount.name -}}
{{- else -}}
{{- default "default" .v.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "waybill-lib.natsIdentitySecret" -}}
{{- default (include "waybill-lib.nameWith" (dict "c" . "suffix" "nats")) .v.nats.identity.existingSecret -}}
{{- end -}}

{{- define "waybill-lib.natsTlsSecret" -}}
{{- default (include "waybill-lib.nameWith" (dict "c" . "suffix" "nats-tls")) .v.nats.tls.existingSecret -}}
{{- end -}}

{{- define "waybill-lib.secretsName" -}}
{{- default (include "waybill-lib.nameWith" (dict "c" . "suffix" "secrets")) .v.secrets.existingSecret -}}
{{- end -}}

{{- define "waybill-lib.provisioningSecret" -}}
{{- if .v.provisioning.identity.seed -}}
{{- include "waybill-lib.nameWith" (dict "c" . "suffix" "provisioning") -}}
{{- else -}}
{{- .v.provisioning.identity.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The subject prefix the service runs under (WAYBILL_SUBJECT_PREFIX). */}}
{{- define "waybill-lib.subjectPrefix" -}}
{{- default "waybill" (get .v.settings "WAYBILL_SUBJECT_PREFIX") -}}
{{- end -}}

{{/* Seconds the pod may take to stop: preStop, the drain deadline, a margin. */}}
{{- define "waybill-lib.terminationGracePeriod" -}}
{{- $deadline := float64 (default .v.declared.shutdownDeadlineS (get .v.settings "WAYBILL_SHUTDOWN_DEADLINE_S")) -}}
{{- add (int .v.shutdown.preStopSleepSeconds) (int (ceil $deadline)) (int .v.shutdown.graceMarginSeconds) -}}
{{- end -}}
