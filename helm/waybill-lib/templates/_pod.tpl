{{/* The volumes of a pod of the service: /tmp, the identity seed, TLS and API files. */}}
{{- define "waybill-lib.volumes" -}}
{{- $c := .c -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ $c.v.tmpSizeLimit }}
{{- if .seedSecret }}
- name: nats-identity
  secret:
    secretName: {{ .seedSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ .seedKey | quote }}
        path: {{ .seedKey | quote }}
{{- end }}
{{- if $c.v.nats.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ include "waybill-lib.natsTlsSecret" $c | quote }}
    defaultMode: 0440
    items:
      - key: {{ $c.v.nats.tls.caKey | quote }}
        path: {{ $c.v.nats.tls.caKey | quote }}
{{- if $c.v.nats.tls.mutual }}
      - key: {{ $c.v.nats.tls.certKey | quote }}
        path: {{ $c.v.nats.tls.certKey | quote }}
      - key: {{ $c.v.nats.tls.keyKey | quote }}
        path: {{ $c.v.nats.tls.keyKey | quote }}
{{- end }}
{{- end }}
{{- if .service }}
{{- if not $c.v.persistence.enabled }}
- name: state
  emptyDir:
    sizeLimit: {{ $c.v.tmpSizeLimit }}
{{- else if ne $c.v.workload "StatefulSet" }}
- name: state
  persistentVolumeClaim:
    claimName: {{ include "waybill-lib.nameWith" (dict "c" $c "suffix" "state") | quote }}
{{- end }}
{{- if and $c.v.declared.protectedRoutes (not $c.v.api.jwks.url) $c.v.api.jwks.existingConfigMap }}
- name: api-jwks
  configMap:
    name: {{ $c.v.api.jwks.existingConfigMap | quote }}
    items:
      - key: {{ $c.v.api.jwks.key | quote }}
        path: {{ $c.v.api.jwks.key | quote }}
{{- end }}
{{- if and $c.v.declared.protectedRoutes $c.v.api.revokedJti.existingConfigMap }}
- name: api-revoked-jti
  configMap:
    name: {{ $c.v.api.revokedJti.existingConfigMap | quote }}
    items:
      - key: {{ $c.v.api.revokedJti.key | quote }}
        path: {{ $c.v.api.revokedJti.key | quote }}
{{- end }}
{{- with $c.v.declared.secretSettings }}
{{/* One file per secret setting, named after its variable (WAYBILL_SECRETS_DIR). Optional:
     a key the Secret lacks leaves its setting unset, and a required one missing is named
     by the service itself when it starts, in one log line. */}}
- name: secrets
  secret:
    secretName: {{ include "waybill-lib.secretsName" $c | quote }}
    defaultMode: 0440
    optional: true
    items:
{{- range $var := keys . | sortAlpha }}
      - key: {{ default $var (get $c.v.secrets.keys $var) | quote }}
        path: {{ $var | quote }}
{{- end }}
{{- end }}
{{- range $var := keys $c.v.secretFiles | sortAlpha }}
{{- $file := get $c.v.secretFiles $var }}
- name: {{ printf "file-%s" ($var | lower | replace "_" "-") | trunc 63 | trimSuffix "-" }}
  secret:
    secretName: {{ required (printf "secretFiles.%s.existingSecret is required" $var) $file.existingSecret | quote }}
    defaultMode: 0440
    items:
      - key: {{ $file.key | quote }}
        path: {{ $file.key | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "waybill-lib.volumeMounts" -}}
{{- $c := .c -}}
{{- $paths := fromYaml (include "waybill-lib.paths" $c) -}}
- name: tmp
  mountPath: /tmp
{{- if .seedSecret }}
- name: nats-identity
  mountPath: {{ $paths.identity }}
  readOnly: true
{{- end }}
{{- if $c.v.nats.tls.enabled }}
- name: nats-tls
  mountPath: {{ $paths.tls }}
  readOnly: true
{{- end }}
{{- if .service }}
- name: state
  mountPath: {{ $c.v.persistence.mountPath }}
{{- if and $c.v.declared.protectedRoutes (not $c.v.api.jwks.url) $c.v.api.jwks.existingConfigMap }}
- name: api-jwks
  mountPath: {{ $paths.jwks }}
  readOnly: true
{{- end }}
{{- if and $c.v.declared.protectedRoutes $c.v.api.revokedJti.existingConfigMap }}
- name: api-revoked-jti
  mountPath: {{ $paths.revokedJti }}
  readOnly: true
{{- end }}
{{- if $c.v.declared.secretSettings }}
- name: secrets
  mountPath: {{ $paths.secrets }}
  readOnly: true
{{- end }}
{{- range $var := keys $c.v.secretFiles | sortAlpha }}
- name: {{ printf "file-%s" ($var | lower | replace "_" "-") | trunc 63 | trimSuffix "-" }}
  mountPath: {{ printf "%s/%s" $paths.files ($var | lower | replace "_" "-") }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Resources of a container; refuses to render one without requests and limits. */}}
{{- define "waybill-lib.resources" -}}
{{- $r := .resources | default dict -}}
{{- range $part := list "requests" "limits" }}
{{- $section := index $r $part | default dict }}
{{- range $amount := list "cpu" "memory" }}
{{- if not (index $section $amount) }}
{{- fail (printf "%s: resources.%s.%s is required (every Waybill container has requests and limits)" $.what $part $amount) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $r }}
{{- end -}}

{{/* Scheduling and security shared by every pod of the service. */}}
{{- define "waybill-lib.podCommon" -}}
{{- $c := . -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml $c.v.podSecurityContext | nindent 2 }}
{{- with $c.v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- end -}}

{{/* The pod template of the service's Deployment or StatefulSet. */}}
{{- define "waybill-lib.podTemplate" -}}
{{- $c := . -}}
{{- $seedSecret := "" -}}
{{- if $c.v.nats.identity.enabled -}}{{- $seedSecret = include "waybill-lib.natsIdentitySecret" $c -}}{{- end -}}
metadata:
  labels:
    {{- include "waybill-lib.labels" $c | nindent 4 }}
    {{- with $c.v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    kubectl.kubernetes.io/default-container: {{ $c.name | quote }}
    {{- if and $c.v.nats.identity.seed $c.v.nats.identity.enabled }}
    checksum/nats-identity: {{ $c.v.nats.identity.seed | sha256sum | quote }}
    {{- end }}
    {{- if $c.v.secrets.values }}
    checksum/secrets: {{ toJson $c.v.secrets.values | sha256sum | quote }}
    {{- end }}
    {{- with $c.v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "waybill-lib.serviceAccountName" $c | quote }}
  {{- include "waybill-lib.podCommon" $c | nindent 2 }}
  terminationGracePeriodSeconds: {{ include "waybill-lib.terminationGracePeriod" $c }}
  {{- if $c.v.topologySpread.enabled }}
  topologySpreadConstraints:
    {{- range $c.v.topologySpread.topologyKeys }}
    - maxSkew: {{ int $c.v.topologySpread.maxSkew }}
      topologyKey: {{ . | quote }}
      whenUnsatisfiable: {{ $c.v.topologySpread.whenUnsatisfiable }}
      labelSelector:
        matchLabels:
          {{- include "waybill-lib.selectorLabels" $c | nindent 10 }}
    {{- end }}
  {{- end }}
  {{- with $c.v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ $c.name | quote }}
      image: {{ include "waybill-lib.image" $c | quote }}
      imagePullPolicy: {{ $c.v.image.pullPolicy }}
      command: ["waybill", "run", {{ $c.name | quote }}]
      ports:
        - name: http
          containerPort: {{ int $c.v.declared.port }}
          protocol: TCP
      env:
        {{- include "waybill-lib.serviceEnv" $c | nindent 8 }}
      {{- range $kind := list "startup" "liveness" "readiness" }}
      {{- $probe := index $c.v.probes $kind }}
      {{ $kind }}Probe:
        httpGet:
          path: {{ $probe.path }}
          port: http
        periodSeconds: {{ int $probe.periodSeconds }}
        timeoutSeconds: {{ int $probe.timeoutSeconds }}
        failureThreshold: {{ int $probe.failureThreshold }}
      {{- end }}
      {{- if gt (int $c.v.shutdown.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ int $c.v.shutdown.preStopSleepSeconds }}
      {{- end }}
      resources:
        {{- include "waybill-lib.resources" (dict "resources" $c.v.resources "what" $c.name) | nindent 8 }}
      securityContext:
        {{- toYaml $c.v.securityContext | nindent 8 }}
      volumeMounts:
        {{- include "waybill-lib.volumeMounts" (dict "c" $c "seedSecret" $seedSecret "service" true) | nindent 8 }}
  volumes:
    {{- include "waybill-lib.volumes" (dict "c" $c "seedSecret" $seedSecret "seedKey" $c.v.nats.identity.seedKey "service" true) | nindent 4 }}
{{- end -}}
