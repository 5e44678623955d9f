{{- define "waybill-lib.scaling" -}}
{{- $c := . -}}
{{- $fullname := include "waybill-lib.fullname" $c -}}
{{- $stateful := eq $c.v.workload "StatefulSet" -}}
{{- if $c.v.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  maxUnavailable: {{ $c.v.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "waybill-lib.selectorLabels" $c | nindent 6 }}
{{- end }}
{{- if and (not $stateful) $c.v.keda.enabled }}
---
{{- $prefix := include "waybill-lib.subjectPrefix" $c }}
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicaCount: {{ int $c.v.keda.minReplicas }}
  maxReplicaCount: {{ int $c.v.keda.maxReplicas }}
  pollingInterval: {{ int $c.v.keda.pollingInterval }}
  cooldownPeriod: {{ int $c.v.keda.cooldownPeriod }}
  triggers:
    {{- range $c.v.declared.consumers }}
    - type: nats-jetstream
      metadata:
        natsServerMonitoringEndpoint: {{ $c.v.keda.natsServerMonitoringEndpoint | quote }}
        account: {{ $c.v.keda.account | quote }}
        stream: {{ printf "%s_%s" (upper $prefix) .streamSuffix | quote }}
        consumer: {{ .durable | quote }}
        lagThreshold: {{ $c.v.keda.lagThreshold | toString | quote }}
        useHttps: {{ $c.v.keda.useHttps | toString | quote }}
    {{- end }}
    - type: cpu
      metricType: Utilization
      metadata:
        value: {{ $c.v.keda.targetCPUUtilizationPercentage | toString | quote }}
{{- else if and (not $stateful) $c.v.hpa.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $fullname }}
  minReplicas: {{ int $c.v.hpa.minReplicas }}
  maxReplicas: {{ int $c.v.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int $c.v.hpa.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}

{{/*
NetworkPolicy: ingress only to a service that takes webhooks or API calls (and to
/metrics when scraped); egress only to DNS, NATS, the OTLP endpoint and its partners.
*/}}
{{- define "waybill-lib.networkPolicy" -}}
{{- $c := . -}}
{{- if $c.v.networkPolicy.enabled }}
{{- $np := $c.v.networkPolicy -}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "waybill-lib.fullname" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "waybill-lib.selectorLabels" $c | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- $ingress := list -}}
  {{- if $c.v.declared.ingress }}
  {{- $ingress = append $ingress (dict "from" $np.ingressFrom "ports" (list (dict "port" "http" "protocol" "TCP"))) -}}
  {{- end }}
  {{- if $c.v.serviceMonitor.enabled }}
  {{- $ingress = append $ingress (dict "from" $np.metricsFrom "ports" (list (dict "port" "http" "protocol" "TCP"))) -}}
  {{- end }}
  ingress:
  {{- range $ingress }}
    - ports:
        {{- toYaml .ports | nindent 8 }}
      {{- with .from }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- else }} []
  {{- end }}
  egress:
    {{- range $rule := list $np.dns $np.nats }}
    - ports:
        {{- toYaml $rule.ports | nindent 8 }}
      {{- with $rule.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- if $c.v.otel.enabled }}
    - ports:
        {{- toYaml $np.otlp.ports | nindent 8 }}
      {{- with $np.otlp.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
    {{- range $partner := $c.v.declared.partners }}
    {{- $egress := $np.partnerDefaults }}
    {{- with (get $c.v.partners $partner) }}{{- with .egress }}{{- $egress = . }}{{- end }}{{- end }}
    # partner {{ $partner }}
    - ports:
        {{- toYaml (default $np.partnerDefaults.ports $egress.ports) | nindent 8 }}
      {{- with $egress.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
---
# The provisioning Job and the test Pod: no callers, and only DNS and NATS to reach.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "helpers") }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ default $c.name $c.v.nameOverride | quote }}
      app.kubernetes.io/instance: {{ $c.root.Release.Name | quote }}
    matchExpressions:
      - key: app.kubernetes.io/component
        operator: In
        values: [provisioning, test]
  policyTypes: [Ingress, Egress]
  ingress: []
  egress:
    {{- range $rule := list $np.dns $np.nats }}
    - ports:
        {{- toYaml $rule.ports | nindent 8 }}
      {{- with $rule.to }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- end }}
{{- end }}
{{- end -}}

{{- define "waybill-lib.serviceMonitor" -}}
{{- $c := . -}}
{{- if $c.v.serviceMonitor.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "waybill-lib.fullname" $c }}
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
    {{- with $c.v.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "waybill-lib.selectorLabels" $c | nindent 6 }}
    matchExpressions:
      - key: waybill.io/headless
        operator: DoesNotExist
  endpoints:
    - port: http
      path: /metrics
      interval: {{ $c.v.serviceMonitor.interval }}
      scrapeTimeout: {{ $c.v.serviceMonitor.scrapeTimeout }}
{{- end }}
{{- end -}}
