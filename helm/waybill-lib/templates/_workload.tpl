{{- define "waybill-lib.workload" -}}
{{- $c := . -}}
{{- $fullname := include "waybill-lib.fullname" $c -}}
{{- $stateful := eq $c.v.workload "StatefulSet" -}}
{{- $scaled := and (not $stateful) (or $c.v.hpa.enabled $c.v.keda.enabled) -}}
apiVersion: apps/v1
kind: {{ ternary "StatefulSet" "Deployment" $stateful }}
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  {{- if not $scaled }}
  replicas: {{ int $c.v.replicas }}
  {{- end }}
  revisionHistoryLimit: {{ int $c.v.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "waybill-lib.selectorLabels" $c | nindent 6 }}
  {{- if $stateful }}
  serviceName: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "headless") }}
  podManagementPolicy: OrderedReady
  updateStrategy:
    type: RollingUpdate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  {{- end }}
  template:
    {{- include "waybill-lib.podTemplate" $c | nindent 4 }}
  {{- if and $stateful $c.v.persistence.enabled }}
  volumeClaimTemplates:
    - metadata:
        name: state
        labels:
          {{- include "waybill-lib.selectorLabels" $c | nindent 10 }}
      spec:
        accessModes:
          {{- toYaml $c.v.persistence.accessModes | nindent 10 }}
        {{- with $c.v.persistence.storageClassName }}
        storageClassName: {{ . | quote }}
        {{- end }}
        resources:
          requests:
            storage: {{ $c.v.persistence.size }}
  {{- end }}
{{- if and $c.v.persistence.enabled (not $stateful) }}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "state") }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes:
    {{- toYaml $c.v.persistence.accessModes | nindent 4 }}
  {{- with $c.v.persistence.storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ $c.v.persistence.size }}
{{- end }}
{{- end -}}

{{- define "waybill-lib.service" -}}
{{- $c := . -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "waybill-lib.fullname" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
  {{- with $c.v.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $c.v.service.type }}
  selector:
    {{- include "waybill-lib.selectorLabels" $c | nindent 4 }}
  ports:
    - name: http
      port: {{ int $c.v.service.port }}
      targetPort: http
      protocol: TCP
{{- if eq $c.v.workload "StatefulSet" }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "headless") }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
    waybill.io/headless: "true"
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    {{- include "waybill-lib.selectorLabels" $c | nindent 4 }}
  ports:
    - name: http
      port: {{ int $c.v.declared.port }}
      targetPort: http
      protocol: TCP
{{- end }}
{{- end -}}

{{- define "waybill-lib.serviceAccount" -}}
{{- $c := . -}}
{{- if $c.v.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "waybill-lib.serviceAccountName" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
  {{- with $c.v.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end -}}

{{/* Secrets the chart makes from values (for trials; production names existing ones). */}}
{{- define "waybill-lib.secrets" -}}
{{- $c := . -}}
{{- if and $c.v.nats.identity.enabled $c.v.nats.identity.seed (not $c.v.nats.identity.existingSecret) }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "waybill-lib.natsIdentitySecret" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
type: Opaque
data:
  {{ $c.v.nats.identity.seedKey }}: {{ $c.v.nats.identity.seed | b64enc | quote }}
{{- end }}
{{- if and $c.v.secrets.values (not $c.v.secrets.existingSecret) }}
---
apiVersion: v1
kind: Secret
metadata:
  name: {{ include "waybill-lib.secretsName" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
type: Opaque
data:
  {{- range $var := keys $c.v.secrets.values | sortAlpha }}
  {{ default $var (get $c.v.secrets.keys $var) }}: {{ get $c.v.secrets.values $var | toString | b64enc | quote }}
  {{- end }}
{{- end }}
{{- end -}}
