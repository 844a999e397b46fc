{{/*
Names, labels and the pieces of the pod spec that depend on several values. Uses only Helm's
built-in functions and sprig's, so that `helm template` and the test suite's rendering through
Helm's Go SDK agree.
*/}}

{{- define "sculpt.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sculpt.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "sculpt.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sculpt.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "sculpt.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 }}
{{ include "sculpt.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "sculpt.image" -}}
{{- $tag := .Values.image.tag | default (printf "%s-%s" .Chart.AppVersion .Values.device) -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}

{{/* The device block of values (cpu or cuda). */}}
{{- define "sculpt.deviceValues" -}}
{{- if eq .Values.device "cuda" -}}
{{- toYaml .Values.cuda -}}
{{- else -}}
{{- toYaml .Values.cpu -}}
{{- end -}}
{{- end -}}

{{/* Resources: the device block's unless .Values.resources is set; GPUs added for cuda. */}}
{{- define "sculpt.resources" -}}
{{- $device := include "sculpt.deviceValues" . | fromYaml -}}
{{- $resources := deepCopy (default $device.resources .Values.resources) -}}
{{- if eq .Values.device "cuda" -}}
{{- $gpus := dict "nvidia.com/gpu" (int .Values.cuda.gpus) -}}
{{- $_ := set $resources "requests" (merge (default (dict) $resources.requests) $gpus) -}}
{{- $_ := set $resources "limits" (merge (default (dict) $resources.limits) $gpus) -}}
{{- end -}}
{{- toYaml $resources -}}
{{- end -}}

{{- define "sculpt.apiKeysEnabled" -}}
{{- if or .Values.apiKeys.existingSecret .Values.apiKeys.keys -}}true{{- end -}}
{{- end -}}

{{- define "sculpt.apiKeysSecret" -}}
{{- .Values.apiKeys.existingSecret | default (printf "%s-api-keys" (include "sculpt.fullname" .)) -}}
{{- end -}}

{{/* plain, tls or mtls: what the probes can use. */}}
{{- define "sculpt.tlsMode" -}}
{{- if and .Values.tls.enabled .Values.tls.clientCA -}}mtls
{{- else if .Values.tls.enabled -}}tls
{{- else -}}plain
{{- end -}}
{{- end -}}

{{/*
A probe's handler. "started" asks the gRPC health service, which answers only once the model
is loaded (the gRPC port opens then); "alive" asks /live (503 after a backend failure, 200 while
loading and draining); "ready" asks /health. The kubelet's gRPC probe has no TLS, so with TLS
"started" asks /health over HTTPS too; with mTLS the kubelet cannot present a client
certificate, so only the ports are checked (the gRPC port opens after the load).
*/}}
{{- define "sculpt.probeHandler" -}}
{{- $mode := include "sculpt.tlsMode" .root -}}
{{- if eq $mode "mtls" -}}
tcpSocket:
  port: {{ eq .kind "alive" | ternary "http" "grpc" }}
{{- else if eq .kind "alive" -}}
httpGet:
  path: /live
  port: http
  scheme: {{ eq $mode "tls" | ternary "HTTPS" "HTTP" }}
{{- else if or (eq $mode "tls") (eq .kind "ready") -}}
httpGet:
  path: /health
  port: http
  scheme: {{ eq $mode "tls" | ternary "HTTPS" "HTTP" }}
{{- else -}}
grpc:
  port: {{ .root.Values.server.grpcPort }}
  service: sculpt.v1.TextDiffusion
{{- end -}}
{{- end -}}

{{- define "sculpt.env" -}}
{{- $resources := include "sculpt.resources" . | fromYaml -}}
- name: SCULPT_HOST
  value: "0.0.0.0"
- name: SCULPT_GRPC_PORT
  value: {{ .Values.server.grpcPort | quote }}
- name: SCULPT_HTTP_PORT
  value: {{ .Values.server.httpPort | quote }}
- name: SCULPT_DEVICE
  value: {{ .Values.device }}
{{- if and $resources.limits (hasKey $resources.limits "cpu") }}
# OpenMP would start one thread per core of the node, not of the CPU limit.
- name: SCULPT_THREADS
  valueFrom:
    resourceFieldRef:
      resource: limits.cpu
{{- end }}
- name: SCULPT_SHUTDOWN_TIMEOUT
  value: {{ .Values.server.shutdownTimeoutSeconds | quote }}
- name: SCULPT_LOG_FORMAT
  value: {{ .Values.server.logFormat }}
{{- if eq .Values.device "cuda" }}
- name: CUDA_CACHE_PATH
  value: /tmp/cuda-cache
{{- end }}
{{- with .Values.model.name }}
- name: SCULPT_MODEL
  value: {{ printf "/models/%s" . | quote }}
{{- end }}
{{- with .Values.model.servedName }}
- name: SCULPT_SERVED_MODEL_NAME
  value: {{ . | quote }}
{{- end }}
{{- if include "sculpt.apiKeysEnabled" . }}
- name: SCULPT_API_KEY_FILE
  value: {{ printf "/etc/sculpt/api-keys/%s" .Values.apiKeys.secretKey }}
{{- if .Values.apiKeys.protectMetrics }}
- name: SCULPT_PROTECT_METRICS
  value: "true"
{{- end }}
{{- if .Values.apiKeys.maxRequestsPerKey }}
- name: SCULPT_MAX_REQUESTS_PER_KEY
  value: {{ .Values.apiKeys.maxRequestsPerKey | quote }}
{{- end }}
{{- if .Values.apiKeys.rateLimitPerKey }}
- name: SCULPT_RATE_LIMIT_PER_KEY
  value: {{ .Values.apiKeys.rateLimitPerKey | quote }}
{{- end }}
{{- end }}
{{- if .Values.tls.enabled }}
- name: SCULPT_TLS_CERT
  value: /etc/sculpt/tls/tls.crt
- name: SCULPT_TLS_KEY
  value: /etc/sculpt/tls/tls.key
{{- if .Values.tls.clientCA }}
- name: SCULPT_TLS_CLIENT_CA
  value: /etc/sculpt/tls/ca.crt
{{- end }}
{{- end }}
{{- /* Flags the chart sets from its values: `config` may not set them too. */ -}}
{{- $reserved := list "host" "grpc-port" "http-port" "device" "threads" "shutdown-timeout" "log-format" "model" "served-model-name" "api-key" "api-key-file" "protect-metrics" "max-requests-per-key" "rate-limit-per-key" "tls-cert" "tls-key" "tls-client-ca" -}}
{{- range $flag, $value := .Values.config }}
{{- if has $flag $reserved }}
{{- fail (printf "config.%s is set by the chart from other values (docs/deploy.md, \"Helm\")" $flag) }}
{{- end }}
- name: {{ printf "SCULPT_%s" ($flag | upper | replace "-" "_") }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Refusals of value combinations that would install but not work. */}}
{{- define "sculpt.validate" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret: a kubernetes.io/tls Secret with tls.crt and tls.key" -}}
{{- end -}}
{{- if and .Values.tls.clientCA (not .Values.tls.enabled) -}}
{{- fail "tls.clientCA needs tls.enabled (and ca.crt in tls.existingSecret)" -}}
{{- end -}}
{{- if and .Values.apiKeys.existingSecret .Values.apiKeys.keys -}}
{{- fail "give apiKeys.existingSecret or apiKeys.keys, not both" -}}
{{- end -}}
{{- range .Values.apiKeys.keys -}}
{{- if or (lt (len .) 16) (gt (len .) 512) (not (regexMatch "^[!-~]+$" .)) -}}
{{- fail "each of apiKeys.keys must be 16 to 512 visible ASCII characters without spaces" -}}
{{- end -}}
{{- end -}}
{{- if and (or .Values.apiKeys.protectMetrics .Values.apiKeys.maxRequestsPerKey .Values.apiKeys.rateLimitPerKey) (not (include "sculpt.apiKeysEnabled" .)) -}}
{{- fail "apiKeys.protectMetrics, maxRequestsPerKey and rateLimitPerKey need keys: apiKeys.existingSecret or apiKeys.keys" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.apiKeys.protectMetrics (not .Values.serviceMonitor.authorization.secretName) -}}
{{- fail "apiKeys.protectMetrics with serviceMonitor.enabled needs serviceMonitor.authorization.secretName and secretKey: the key Prometheus sends" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled .Values.tls.clientCA (not (and .Values.serviceMonitor.tlsConfig.cert .Values.serviceMonitor.tlsConfig.keySecret)) -}}
{{- fail "tls.clientCA with serviceMonitor.enabled needs serviceMonitor.tlsConfig.cert and keySecret: the client certificate Prometheus presents" -}}
{{- end -}}
{{- if and .Values.model.name (not .Values.model.volume) (not .Values.extraVolumeMounts) -}}
{{- fail "model.name needs model.volume (or extraVolumes and extraVolumeMounts) to mount /models" -}}
{{- end -}}
{{- end -}}
