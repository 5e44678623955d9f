{{/*
Provisioning: `waybill provision <service>` as the admin identity, before the
release's pods start (pre-install) and before each upgrade (a new message type
may need a new durable filter). Idempotent: it creates what is missing and
accepts what matches. It reads the same WAYBILL_* settings as the service, so
retention, replicas and consumer limits agree.
*/}}
{{- define "waybill-lib.provisioning" -}}
{{- $c := . -}}
{{- if $c.v.provisioning.enabled }}
{{- $p := $c.v.provisioning -}}
{{- $seedSecret := "" -}}
{{- if $p.identity.enabled -}}{{- $seedSecret = include "waybill-lib.provisioningSecret" $c -}}{{- end -}}
{{- $name := include "waybill-lib.nameWith" (dict "c" $c "suffix" "provision") -}}
{{- if and $p.identity.enabled $p.identity.seed }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ $seedSecret }}
  labels:
    {{- include "waybill-lib.helperLabels" (dict "c" $c "component" "provisioning") | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation
type: Opaque
data:
  {{ $p.identity.seedKey }}: {{ $p.identity.seed | b64enc | quote }}
{{- end }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  labels:
    {{- include "waybill-lib.helperLabels" (dict "c" $c "component" "provisioning") | nindent 4 }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  backoffLimit: {{ int $p.backoffLimit }}
  activeDeadlineSeconds: {{ int $p.activeDeadlineSeconds }}
  ttlSecondsAfterFinished: {{ int $p.ttlSecondsAfterFinished }}
  template:
    metadata:
      labels:
        {{- include "waybill-lib.helperLabels" (dict "c" $c "component" "provisioning") | nindent 8 }}
    spec:
      restartPolicy: OnFailure
      {{- include "waybill-lib.podCommon" $c | nindent 6 }}
      containers:
        - name: provision
          image: {{ include "waybill-lib.image" $c | quote }}
          imagePullPolicy: {{ $c.v.image.pullPolicy }}
          command: ["waybill", "provision", {{ $c.name | quote }}]
          env:
            {{- /* The service's own consumer defaults (its durables' limits), unless set. */}}
            {{- range $var, $value := $c.v.declared.consumerDefaults }}
            {{- if not (hasKey $c.v.settings $var) }}
            - name: {{ $var }}
              value: {{ $value | toString | quote }}
            {{- end }}
            {{- end }}
            {{- include "waybill-lib.natsEnv" (dict "c" $c "seedFile" $p.identity.enabled "seedKey" $p.identity.seedKey) | nindent 12 }}
          resources:
            {{- include "waybill-lib.resources" (dict "resources" $p.resources "what" (printf "%s provisioning" $c.name)) | nindent 12 }}
          securityContext:
            {{- toYaml $c.v.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "waybill-lib.volumeMounts" (dict "c" $c "seedSecret" $seedSecret) | nindent 12 }}
      volumes:
        {{- include "waybill-lib.volumes" (dict "c" $c "seedSecret" $seedSecret "seedKey" $p.identity.seedKey) | nindent 8 }}
{{- end }}
{{- end -}}

{{/* `helm test`: the service answers $SRV.PING on NATS (`waybill ping`), as the operator. */}}
{{- define "waybill-lib.test" -}}
{{- $c := . -}}
{{- if $c.v.test.enabled }}
{{- $t := $c.v.test -}}
{{- $seedSecret := "" -}}
{{- if $t.identity.enabled -}}{{- $seedSecret = $t.identity.existingSecret -}}{{- end -}}
---
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "test-ping") }}
  labels:
    {{- include "waybill-lib.helperLabels" (dict "c" $c "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  {{- include "waybill-lib.podCommon" $c | nindent 2 }}
  containers:
    - name: ping
      image: {{ include "waybill-lib.image" $c | quote }}
      imagePullPolicy: {{ $c.v.image.pullPolicy }}
      command: ["waybill", "ping", {{ $c.name | quote }}, "--timeout", {{ $t.timeoutSeconds | toString | quote }}]
      env:
        {{- include "waybill-lib.natsEnv" (dict "c" $c "seedFile" $t.identity.enabled "seedKey" $t.identity.seedKey) | nindent 8 }}
      resources:
        {{- include "waybill-lib.resources" (dict "resources" $t.resources "what" (printf "%s test" $c.name)) | nindent 8 }}
      securityContext:
        {{- toYaml $c.v.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "waybill-lib.volumeMounts" (dict "c" $c "seedSecret" $seedSecret) | nindent 8 }}
  volumes:
    {{- include "waybill-lib.volumes" (dict "c" $c "seedSecret" $seedSecret "seedKey" $t.identity.seedKey) | nindent 4 }}
{{- end }}
{{- end -}}
