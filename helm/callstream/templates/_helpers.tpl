{{/*
Names, labels and the small shared pieces of the pod specs.
Every template is one Kubernetes object; what several of them share lives here.
*/}}

{{/* The chart name, truncated to 63 characters (a DNS label). */}}
{{- define "callstream.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified app name. Kept at most 50 characters so that "-<component>-metrics"
(the longest suffix the chart appends) still fits in a 63-character name.
*/}}
{{- define "callstream.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: callstream.componentName (dict "context" $ "component" "gateway") */}}
{{- define "callstream.componentName" -}}
{{- printf "%s-%s" (include "callstream.fullname" .context) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callstream.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callstream.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "callstream.labels" -}}
helm.sh/chart: {{ include "callstream.chart" . }}
{{ include "callstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: callstream
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "callstream.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callstream.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component's objects: include "callstream.componentLabels" (dict "context" $ "component" "gateway") */}}
{{- define "callstream.componentLabels" -}}
{{ include "callstream.labels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callstream.componentSelectorLabels" -}}
{{ include "callstream.selectorLabels" .context }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "callstream.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "callstream.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "callstream.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "callstream.configMapName" -}}
{{- printf "%s-config" (include "callstream.fullname" .) -}}
{{- end -}}

{{/* The Secret the pods read: the user's existingSecret, or the chart's own. */}}
{{- define "callstream.secretName" -}}
{{- if .Values.secrets.existingSecret -}}
{{- .Values.secrets.existingSecret -}}
{{- else -}}
{{- printf "%s-secrets" (include "callstream.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "callstream.createSecret" -}}
{{- if not .Values.secrets.existingSecret -}}true{{- end -}}
{{- end -}}

{{- define "callstream.normalizerTransactionalIdPrefix" -}}
{{- default (printf "callstream-%s" (include "callstream.namespace" .)) .Values.normalizer.transactionalIdPrefix -}}
{{- end -}}

{{/* The gateway's public URL, the default notifyUrl. */}}
{{- define "callstream.notifyUrl" -}}
{{- if .Values.config.notifyUrl -}}
{{- .Values.config.notifyUrl -}}
{{- else if .Values.gateway.ingress.enabled -}}
{{- printf "%s://%s%s" (ternary "https" "http" .Values.gateway.ingress.tls) .Values.gateway.ingress.hostname .Values.gateway.path -}}
{{- end -}}
{{- end -}}

{{/* librdkafka property -> environment variable: security.protocol -> CALLSTREAM_KAFKA__SECURITY_PROTOCOL */}}
{{- define "callstream.kafkaEnvName" -}}
{{- printf "CALLSTREAM_KAFKA__%s" (. | replace "." "_" | replace "-" "_" | upper) -}}
{{- end -}}

{{/*
The non-secret configuration shared by every service, as a YAML map of environment variables.
Rendered into the ConfigMap, and inline into the topics hook Job (a pre-upgrade hook runs
before the ConfigMap is upgraded). Never put a secret here: tests assert it.
*/}}
{{- define "callstream.configData" -}}
CALLSTREAM_KAFKA_BOOTSTRAP_SERVERS: {{ .Values.kafka.bootstrapServers | quote }}
{{- $props := dict }}
{{- if .Values.kafka.sasl.enabled }}
{{- $_ := set $props "security.protocol" .Values.kafka.sasl.securityProtocol }}
{{- $_ := set $props "sasl.mechanism" .Values.kafka.sasl.mechanism }}
{{- $_ := set $props "sasl.username" .Values.kafka.sasl.username }}
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
{{- $_ := set $props "ssl.ca.location" (printf "/etc/callstream/kafka-ca/%s" .Values.kafka.tls.caKey) }}
{{- end }}
{{- $props = merge (deepCopy .Values.kafka.properties) $props }}
{{- range $name, $value := $props }}
{{ include "callstream.kafkaEnvName" $name }}: {{ $value | toString | quote }}
{{- end }}
CALLSTREAM_TOPIC_REQUESTS: {{ .Values.config.topics.requests | quote }}
CALLSTREAM_TOPIC_REQUESTS_RETRY: {{ .Values.config.topics.requestsRetry | quote }}
CALLSTREAM_TOPIC_REQUESTS_DLQ: {{ .Values.config.topics.requestsDlq | quote }}
CALLSTREAM_TOPIC_DISPATCHES: {{ .Values.config.topics.dispatches | quote }}
CALLSTREAM_TOPIC_CALLBACKS_RAW: {{ .Values.config.topics.callbacksRaw | quote }}
CALLSTREAM_TOPIC_CALLBACKS_DLQ: {{ .Values.config.topics.callbacksDlq | quote }}
CALLSTREAM_TOPIC_EVENTS: {{ .Values.config.topics.events | quote }}
CALLSTREAM_TOPIC_PARTITIONS: {{ .Values.config.topics.partitions | toString | quote }}
CALLSTREAM_TOPIC_REPLICATION_FACTOR: {{ .Values.config.topics.replicationFactor | toString | quote }}
{{- with .Values.config.schemaRegistryUrl }}
CALLSTREAM_SCHEMA_REGISTRY_URL: {{ . | quote }}
{{- end }}
CALLSTREAM_HTTP_PORT: {{ .Values.config.httpPort | toString | quote }}
CALLSTREAM_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
CALLSTREAM_LOG_FORMAT: {{ .Values.config.logFormat | quote }}
CALLSTREAM_PLATFORM_URL: {{ .Values.config.platformUrl | quote }}
{{- with (include "callstream.notifyUrl" .) }}
CALLSTREAM_NOTIFY_URL: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.config.extra }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* A secretKeyRef env entry: include "callstream.secretEnv" (dict "context" $ "name" "ENV" "key" "k") */}}
{{- define "callstream.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "callstream.secretName" .context }}
      key: {{ .key }}
{{- end -}}

{{/* Secret env entries every service needs (Kafka credentials). */}}
{{- define "callstream.commonSecretEnv" -}}
{{- if .Values.kafka.sasl.enabled }}
{{ include "callstream.secretEnv" (dict "context" . "name" "CALLSTREAM_KAFKA__SASL_PASSWORD" "key" .Values.secrets.keys.kafkaSaslPassword) }}
{{- end }}
{{- end -}}

{{/*
The container pieces every Deployment shares: env (pod name, shared secrets, extraEnv),
envFrom (the ConfigMap), volume mounts and probes.
include "callstream.podEnv" (dict "context" $ "values" .Values.dispatcher)
*/}}
{{- define "callstream.podEnv" -}}
- name: CALLSTREAM_POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: CALLSTREAM_POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
- name: HOME
  value: /tmp
{{- include "callstream.commonSecretEnv" .context }}
{{- with .context.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- with .values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "callstream.envFrom" -}}
- configMapRef:
    name: {{ include "callstream.configMapName" . }}
{{- with .Values.extraEnvVarsCM }}
- configMapRef:
    name: {{ . }}
{{- end }}
{{- with .Values.extraEnvVarsSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}

{{- define "callstream.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: /etc/callstream/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "callstream.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolumeSizeLimit }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
    defaultMode: 0444
    items:
      - key: {{ .Values.kafka.tls.caKey }}
        path: {{ .Values.kafka.tls.caKey }}
{{- end }}
{{- end -}}

{{/* Startup and liveness on /healthz, readiness on /readyz: include "callstream.probes" .Values.gateway */}}
{{- define "callstream.probes" -}}
{{- if .startupProbe.enabled }}
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml (omit .startupProbe "enabled") | nindent 2 }}
{{- end }}
{{- if .livenessProbe.enabled }}
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  {{- toYaml (omit .livenessProbe "enabled") | nindent 2 }}
{{- end }}
{{- if .readinessProbe.enabled }}
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  {{- toYaml (omit .readinessProbe "enabled") | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Checksums of the configuration, so a config or secret change rolls the pods. */}}
{{- define "callstream.checksumAnnotations" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/* Soft anti-affinity across nodes unless the user gives an affinity. */}}
{{- define "callstream.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 1
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "callstream.componentSelectorLabels" (dict "context" .context "component" .component) | nindent 12 }}
{{- end }}
{{- end -}}

{{/*
The whole pod template of a service Deployment.
include "callstream.podTemplate" (dict "context" $ "component" "dispatcher" "values" .Values.dispatcher "args" (list "dispatch") "env" $componentEnv "ports" $extraPorts)
*/}}
{{- define "callstream.podTemplate" -}}
{{- $ctx := .context -}}
metadata:
  labels:
    {{- include "callstream.componentLabels" (dict "context" $ctx "component" .component) | nindent 4 }}
    {{- with .values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- include "callstream.checksumAnnotations" $ctx | nindent 4 }}
    {{- with .values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "callstream.serviceAccountName" $ctx }}
  automountServiceAccountToken: {{ $ctx.Values.serviceAccount.automountServiceAccountToken }}
  {{- with $ctx.Values.image.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- toYaml $ctx.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
  {{- with .values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  affinity:
    {{- include "callstream.affinity" (dict "context" $ctx "component" .component "values" .values) | trim | nindent 4 }}
  {{- with .values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "callstream.image" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      command: ["callstream"]
      args:
        {{- toYaml .args | nindent 8 }}
      securityContext:
        {{- toYaml $ctx.Values.containerSecurityContext | nindent 8 }}
      envFrom:
        {{- include "callstream.envFrom" $ctx | nindent 8 }}
      env:
        {{- .env | nindent 8 }}
        {{- include "callstream.podEnv" (dict "context" $ctx "values" .values) | nindent 8 }}
      ports:
        {{- with .ports }}
        {{- . | nindent 8 }}
        {{- end }}
        - name: metrics
          containerPort: {{ $ctx.Values.config.httpPort }}
          protocol: TCP
      {{- include "callstream.probes" .values | trim | nindent 6 }}
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      volumeMounts:
        {{- include "callstream.volumeMounts" $ctx | nindent 8 }}
  volumes:
    {{- include "callstream.volumes" $ctx | nindent 4 }}
{{- end -}}

{{/* Values that make no sense together: fail early with a message that says how to fix them. */}}
{{- define "callstream.validateValues" -}}
{{- $messages := list -}}
{{- $own := not .Values.secrets.existingSecret -}}
{{- if and .Values.gateway.enabled (eq .Values.gateway.auth "hmac") $own (not .Values.secrets.gatewayHmacSecret) -}}
{{- $messages = append $messages "gateway.auth=hmac needs secrets.gatewayHmacSecret (or secrets.existingSecret)" -}}
{{- end -}}
{{- if and .Values.gateway.enabled (eq .Values.gateway.auth "basic") -}}
{{- if not .Values.gateway.basicUsername -}}
{{- $messages = append $messages "gateway.auth=basic needs gateway.basicUsername" -}}
{{- end -}}
{{- if and $own (not .Values.secrets.gatewayBasicPassword) -}}
{{- $messages = append $messages "gateway.auth=basic needs secrets.gatewayBasicPassword (or secrets.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.gateway.enabled (eq .Values.gateway.auth "apikey") $own (not .Values.secrets.gatewayApiKey) -}}
{{- $messages = append $messages "gateway.auth=apikey needs secrets.gatewayApiKey (or secrets.existingSecret)" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled (not .Values.kafka.sasl.username) -}}
{{- $messages = append $messages "kafka.sasl.enabled needs kafka.sasl.username" -}}
{{- end -}}
{{- if and .Values.kafka.sasl.enabled $own (not .Values.kafka.sasl.password) -}}
{{- $messages = append $messages "kafka.sasl.enabled needs kafka.sasl.password (or secrets.existingSecret)" -}}
{{- end -}}
{{- if and .Values.dispatcher.enabled (le (int .Values.dispatcher.terminationGracePeriodSeconds) (int .Values.dispatcher.shutdownDeadlineSeconds)) -}}
{{- $messages = append $messages (printf "dispatcher.terminationGracePeriodSeconds (%v) must exceed dispatcher.shutdownDeadlineSeconds (%v), or Kubernetes kills in-flight calls" .Values.dispatcher.terminationGracePeriodSeconds .Values.dispatcher.shutdownDeadlineSeconds) -}}
{{- end -}}
{{- if and .Values.gateway.ingress.enabled (not .Values.gateway.enabled) -}}
{{- $messages = append $messages "gateway.ingress.enabled needs gateway.enabled" -}}
{{- end -}}
{{- if and .Values.topicsJob.enabled (contains "pre-install" .Values.topicsJob.hooks) .Values.kafka.sasl.enabled $own -}}
{{- $messages = append $messages "topicsJob.hooks has pre-install, which runs before the chart's Secret exists: use secrets.existingSecret for the Kafka password" -}}
{{- end -}}
{{- range $name, $_ := .Values.kafka.properties -}}
{{- if regexMatch "(?i)(password|secret|token|private|credential|key\\.pem)" $name -}}
{{- $messages = append $messages (printf "kafka.properties.%s looks secret and would land in the ConfigMap: use kafka.sasl.password or extraEnvVarsSecret" $name) -}}
{{- end -}}
{{- end -}}
{{- range $name, $_ := .Values.config.extra -}}
{{- if regexMatch "(?i)(password|secret|token|private|credential|_key$)" $name -}}
{{- $messages = append $messages (printf "config.extra.%s looks secret and would land in the ConfigMap: use extraEnvVarsSecret" $name) -}}
{{- end -}}
{{- end -}}
{{- if $messages -}}
{{- printf "\nVALUES VALIDATION:\n  - %s" (join "\n  - " $messages) | fail -}}
{{- end -}}
{{- end -}}

{{/* Environment of the dispatcher's container beyond the ConfigMap. */}}
{{- define "callstream.dispatcherEnv" -}}
- name: CALLSTREAM_DISPATCH_MAX_IN_FLIGHT
  value: {{ .Values.dispatcher.maxInFlight | toString | quote }}
- name: CALLSTREAM_DISPATCH_SHUTDOWN_DEADLINE_S
  value: {{ .Values.dispatcher.shutdownDeadlineSeconds | toString | quote }}
{{- if .Values.dispatcher.rate }}
- name: CALLSTREAM_DISPATCH_RATE
  value: {{ .Values.dispatcher.rate | toString | quote }}
{{- end }}
{{ include "callstream.secretEnv" (dict "context" . "name" "CALLSTREAM_PLATFORM_SERVICE_KEY" "key" .Values.secrets.keys.platformServiceKey) }}
{{- end -}}

{{/* Environment of the gateway's container beyond the ConfigMap: its port and its auth. */}}
{{- define "callstream.gatewayEnv" -}}
- name: CALLSTREAM_GATEWAY_PORT
  value: {{ .Values.gateway.containerPort | toString | quote }}
- name: CALLSTREAM_GATEWAY_PATH
  value: {{ .Values.gateway.path | quote }}
- name: CALLSTREAM_GATEWAY_MAX_BODY_BYTES
  value: {{ .Values.gateway.maxBodyBytes | toString | quote }}
- name: CALLSTREAM_GATEWAY_AUTH
  value: {{ .Values.gateway.auth | quote }}
{{- if eq .Values.gateway.auth "hmac" }}
{{ include "callstream.secretEnv" (dict "context" . "name" "CALLSTREAM_GATEWAY_HMAC_SECRET" "key" .Values.secrets.keys.gatewayHmacSecret) }}
{{- else if eq .Values.gateway.auth "basic" }}
- name: CALLSTREAM_GATEWAY_BASIC_USERNAME
  value: {{ .Values.gateway.basicUsername | quote }}
{{ include "callstream.secretEnv" (dict "context" . "name" "CALLSTREAM_GATEWAY_BASIC_PASSWORD" "key" .Values.secrets.keys.gatewayBasicPassword) }}
{{- else if eq .Values.gateway.auth "apikey" }}
- name: CALLSTREAM_GATEWAY_APIKEY_HEADER
  value: {{ .Values.gateway.apikeyHeader | quote }}
{{ include "callstream.secretEnv" (dict "context" . "name" "CALLSTREAM_GATEWAY_APIKEY" "key" .Values.secrets.keys.gatewayApiKey) }}
{{- end }}
{{- end -}}

{{/*
Environment of the normalizer's container beyond the ConfigMap. transactional.id is
<prefix>-<instance id>, and the instance id is the StatefulSet pod's stable name.
*/}}
{{- define "callstream.normalizerEnv" -}}
- name: CALLSTREAM_NORMALIZER_TRANSACTIONAL_ID_PREFIX
  value: {{ include "callstream.normalizerTransactionalIdPrefix" . | quote }}
- name: CALLSTREAM_NORMALIZER_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end -}}

{{/* NetworkPolicy egress: everything, or DNS + Kafka + the platform (HTTPS) + extraEgress. */}}
{{- define "callstream.networkPolicyEgress" -}}
egress:
{{- if .Values.networkPolicy.allowExternalEgress }}
  - {}
{{- else }}
  - ports:
      - port: 53
        protocol: UDP
      - port: 53
        protocol: TCP
  - ports:
      {{- range .Values.networkPolicy.kafkaPorts }}
      - port: {{ . }}
        protocol: TCP
      {{- end }}
      {{- range .Values.networkPolicy.platformPorts }}
      - port: {{ . }}
        protocol: TCP
      {{- end }}
  {{- with .Values.networkPolicy.extraEgress }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* NetworkPolicy ingress rule for the health/metrics port (kubelet probes do not need it). */}}
{{- define "callstream.networkPolicyMetricsIngress" -}}
- ports:
    - port: {{ .Values.config.httpPort }}
      protocol: TCP
  {{- with .Values.networkPolicy.metricsNSMatchLabels }}
  from:
    - namespaceSelector:
        matchLabels:
          {{- toYaml . | nindent 10 }}
  {{- end }}
{{- end -}}
