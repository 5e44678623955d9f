{{/*
The defaults of every Waybill service, under each chart's own values.

A service chart's values.yaml holds only what differs for that service plus the
block generated from its declaration (`declared:`); the umbrella chart's values
hold `default:` (applied to every component) and `components:`. The library
merges, deepest first: these defaults, the umbrella's `default:`, then the
chart's or component's own values. helm/README.md documents every key.
*/}}
{{- define "waybill-lib.defaults" -}}
# Image: <registry>/<repository>:<tag>[@<digest>]; repository defaults to waybill/<service>
# and tag to the service version of the declaration.
image:
  registry: ""
  repository: ""
  tag: ""
  digest: ""
  pullPolicy: IfNotPresent
imagePullSecrets: []
nameOverride: ""
fullnameOverride: ""
# Deployment, or StatefulSet for a service that keeps local state (the auditor's SQLite).
workload: Deployment
replicas: 2
revisionHistoryLimit: 5
# Non-secret WAYBILL_* settings of the service, by environment variable (the schema
# lists the ones the service reads). Secrets go in `secrets`, files in `secretFiles`.
settings: {}
# More container environment entries, as Kubernetes writes them (OTEL_* and the like).
extraEnv: []
nats:
  url: nats://nats:4222
  # The service's own NATS user: an nkey seed in a Secret, mounted as a file
  # (WAYBILL_NATS_NKEY_SEED_FILE). existingSecret names it (default <fullname>-nats);
  # `seed` makes the chart create it (for trials; keep seeds out of values files).
  identity:
    enabled: true
    existingSecret: ""
    seedKey: nkey.seed
    seed: ""
  # TLS to NATS: a Secret with the CA (and for mutual TLS a client certificate
  # and key), e.g. one cert-manager writes; mounted as files (WAYBILL_NATS_TLS_*).
  tls:
    enabled: false
    existingSecret: ""
    caKey: ca.crt
    mutual: false
    certKey: tls.crt
    keyKey: tls.key
# Secret settings (WAYBILL_FACT_ID_KEY and the partners' credentials the declaration
# lists under declared.secretSettings) from one Secret whose keys are the variable names
# (or `keys` maps a variable to a key), mounted as files (WAYBILL_SECRETS_DIR), never env.
# existingSecret names it (default <fullname>-secrets); `values` makes the chart create it.
secrets:
  existingSecret: ""
  keys: {}
  values: {}
# Settings that name a file (declared.fileSettings): the file comes from a Secret's key,
# mounted read-only, and the variable points at it. VAR: {existingSecret: NAME, key: KEY}
secretFiles: {}
# Who may call the HTTP API (services with protected routes only; docs/security.md).
api:
  issuer: ""
  audience: ""
  jwks:
    # One key source: the identity provider's JWKS URL, or a JWKS file from a ConfigMap.
    url: ""
    existingConfigMap: ""
    key: jwks.json
  revokedJti:
    existingConfigMap: ""
    key: revoked-jti
otel:
  enabled: false
  endpoint: ""
  protocol: grpc
  resourceAttributes: ""
# The Service in front of the container's HTTP port (declared.port).
service:
  type: ClusterIP
  port: 80
  annotations: {}
resources:
  requests:
    cpu: 100m
    memory: 192Mi
  limits:
    cpu: "1"
    memory: 512Mi
probes:
  startup:
    path: /healthz
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 60
  liveness:
    path: /healthz
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  readiness:
    path: /readyz
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 3
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  fsGroupChangePolicy: OnRootMismatch
  seccompProfile:
    type: RuntimeDefault
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  readOnlyRootFilesystem: true
  allowPrivilegeEscalation: false
  privileged: false
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
# Stopping: the pod leaves the Service endpoints during preStop, then gets SIGTERM and
# finishes in-flight work within WAYBILL_SHUTDOWN_DEADLINE_S; the grace period is the
# sum of both plus the margin, so Kubernetes never kills a draining service.
shutdown:
  preStopSleepSeconds: 5
  graceMarginSeconds: 10
tmpSizeLimit: 64Mi
persistence:
  enabled: false
  mountPath: /var/lib/waybill
  size: 2Gi
  storageClassName: ""
  accessModes: [ReadWriteOnce]
pdb:
  enabled: true
  maxUnavailable: 1
hpa:
  enabled: true
  minReplicas: 2
  maxReplicas: 6
  targetCPUUtilizationPercentage: 75
# KEDA ScaledObject on JetStream consumer lag (the service's durables), instead of the HPA.
keda:
  enabled: false
  minReplicas: 2
  maxReplicas: 10
  pollingInterval: 15
  cooldownPeriod: 120
  lagThreshold: 100
  natsServerMonitoringEndpoint: nats-headless:8222
  # The NATS account of the mesh's streams: deploy/nats puts them in WAYBILL.
  account: WAYBILL
  useHttps: false
  targetCPUUtilizationPercentage: 75
topologySpread:
  enabled: true
  maxSkew: 1
  whenUnsatisfiable: ScheduleAnyway
  topologyKeys: [topology.kubernetes.io/zone, kubernetes.io/hostname]
networkPolicy:
  enabled: true
  # Sources allowed to call a service that takes webhooks or API calls (empty: anyone).
  ingressFrom: []
  # Who scrapes /metrics when serviceMonitor is on.
  metricsFrom:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: monitoring
  dns:
    to:
      - namespaceSelector:
          matchLabels:
            kubernetes.io/metadata.name: kube-system
        podSelector:
          matchLabels:
            k8s-app: kube-dns
    ports:
      - {port: 53, protocol: UDP}
      - {port: 53, protocol: TCP}
  nats:
    to:
      - podSelector:
          matchLabels:
            app.kubernetes.io/name: nats
    ports:
      - {port: 4222, protocol: TCP}
  otlp:
    to: []
    ports:
      - {port: 4317, protocol: TCP}
      - {port: 4318, protocol: TCP}
  # Where each partner of declared.partners is reached; partners.<name>.egress overrides.
  partnerDefaults:
    to: []
    ports:
      - {port: 443, protocol: TCP}
partners: {}
serviceMonitor:
  enabled: false
  interval: 30s
  scrapeTimeout: 10s
  labels: {}
serviceAccount:
  create: true
  name: ""
  annotations: {}
podAnnotations: {}
podLabels: {}
nodeSelector: {}
tolerations: []
affinity: {}
priorityClassName: ""
# `waybill provision` as a Helm hook Job before install and upgrade, as the admin identity.
provisioning:
  enabled: true
  identity:
    enabled: true
    existingSecret: waybill-nats-admin
    seedKey: nkey.seed
    seed: ""
  backoffLimit: 6
  activeDeadlineSeconds: 600
  ttlSecondsAfterFinished: 3600
  resources:
    requests:
      cpu: 50m
      memory: 128Mi
    limits:
      cpu: 500m
      memory: 256Mi
# `helm test`: a Pod that asks the service $SRV.PING (`waybill ping`) as the operator identity.
test:
  enabled: true
  identity:
    enabled: true
    existingSecret: waybill-nats-operator
    seedKey: nkey.seed
  timeoutSeconds: 10
  resources:
    requests:
      cpu: 50m
      memory: 96Mi
    limits:
      cpu: 500m
      memory: 256Mi
{{- end -}}
