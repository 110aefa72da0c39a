{{/*
Names and labels shared by every object. Names are cut to 63 characters (the DNS label limit)
because Services and the pods' hostnames derive from them.
*/}}

{{- define "quanttrap.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name: the release name alone when it already contains the chart's name
("quanttrap", "quanttrap-prod"), else "<release>-quanttrap".
*/}}
{{- define "quanttrap.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "quanttrap.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "quanttrap.labels" -}}
helm.sh/chart: {{ include "quanttrap.chart" . }}
app.kubernetes.io/name: {{ include "quanttrap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: quanttrap
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the proxy; the component label keeps it apart from vLLM and the agent. */}}
{{- define "quanttrap.selectorLabels" -}}
app.kubernetes.io/name: {{ include "quanttrap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end }}

{{- define "quanttrap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "quanttrap.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The proxy image: the tag defaults to the chart's appVersion. */}}
{{- define "quanttrap.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Name of the Secret holding the client API keys ("" when there is none). */}}
{{- define "quanttrap.apiKeysSecretName" -}}
{{- if .Values.apiKeys.existingSecret }}
{{- .Values.apiKeys.existingSecret }}
{{- else if .Values.apiKeys.keys }}
{{- printf "%s-api-keys" (include "quanttrap.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The environment variable quanttrap reads client keys from: config.server.api_keys_env when the
config renames it, else quanttrap's default.
*/}}
{{- define "quanttrap.apiKeysEnv" -}}
{{- $server := default (dict) .Values.config.server }}
{{- default "QUANTTRAP_API_KEYS" $server.api_keys_env }}
{{- end }}

{{/*
The config file's text. The config value is passed through `tpl`, so it may name the chart's
own objects, e.g. base_url: 'http://{{ include "quanttrap.fullname" . }}-vllm-bf16:8000/v1'.
*/}}
{{- define "quanttrap.configYaml" -}}
{{- tpl (toYaml .Values.config) . }}
{{- end }}

{{/*
Refuse configurations that cannot work in a pod, with the reason, at install time rather than
as a crash-looping pod.
*/}}
{{- define "quanttrap.checkConfig" -}}
{{- $server := default (dict) .Values.config.server }}
{{- if $server.protect_metrics }}
{{- fail "config.server.protect_metrics: true puts /healthz and /readyz behind an API key, which kubelet probes cannot send; keep it false and restrict /metrics with a NetworkPolicy" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not (dig "requests" "cpu" "" (default (dict) .Values.resources))) }}
{{- fail "autoscaling.enabled needs resources.requests.cpu: the HPA's CPU target is a fraction of the request" }}
{{- end }}
{{- end }}

{{/* Name of a vLLM variant's Deployment and Service. Call with (dict "root" $ "variant" .). */}}
{{- define "quanttrap.vllmName" -}}
{{- printf "%s-vllm-%s" (include "quanttrap.fullname" .root) .variant.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one vLLM variant. Call with (dict "root" $ "variant" .). */}}
{{- define "quanttrap.vllmSelectorLabels" -}}
app.kubernetes.io/name: {{ include "quanttrap.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: vllm
quanttrap.io/variant: {{ .variant.name | quote }}
{{- end }}

{{- define "quanttrap.nvmlAgentName" -}}
{{- printf "%s-nvml-agent" (include "quanttrap.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "quanttrap.nvmlAgentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "quanttrap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: nvml-agent
{{- end }}

{{/*
A Kubernetes object name from a file name: "si_recording.yaml" -> "si-recording". Call with
the file's path.
*/}}
{{- define "quanttrap.fileObjectName" -}}
{{- $base := base . }}
{{- $stem := trimSuffix (ext $base) $base }}
{{- regexReplaceAll "[^a-z0-9-]+" ($stem | lower) "-" | trimAll "-" }}
{{- end }}
