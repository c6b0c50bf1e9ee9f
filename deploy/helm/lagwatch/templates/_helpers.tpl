{{/* Name of the release's objects: the release name, with "-lagwatch" unless it says lagwatch. */}}
{{- define "lagwatch.fullname" -}}
{{- if contains "lagwatch" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-lagwatch" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels that select this release's pods; never change them (StatefulSet selectors are immutable). */}}
{{- define "lagwatch.selectorLabels" -}}
app.kubernetes.io/name: lagwatch
app.kubernetes.io/component: exporter
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of every object, less app.kubernetes.io/component, which each object sets. */}}
{{- define "lagwatch.labels" -}}
app.kubernetes.io/name: lagwatch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "lagwatch.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "lagwatch.secretName" -}}
{{- .Values.secrets.existingSecret | default (include "lagwatch.fullname" .) -}}
{{- end -}}

{{- define "lagwatch.hasSecret" -}}
{{- if or .Values.secrets.existingSecret .Values.secrets.values -}}true{{- end -}}
{{- end -}}

{{/* lagwatch.yaml without the shard, which each pod appends from its ordinal. */}}
{{- define "lagwatch.config" -}}
{{- if hasKey .Values.extraConfig "shard" }}
{{- fail "extraConfig.shard: the chart shards by pod ordinal; set replicas instead" }}
{{- end }}
{{- if hasKey .Values.extraConfig "listen" }}
{{- fail "extraConfig.listen: the chart sets listen to the service port" }}
{{- end }}
{{- if not .Values.clusters }}
{{- fail "clusters: at least one Kafka cluster is needed" }}
{{- end }}
listen: "0.0.0.0:{{ .Values.service.port }}"
poll_interval: {{ .Values.pollInterval }}
granularity: {{ .Values.granularity }}
{{- with .Values.extraConfig }}
{{ toYaml . }}
{{- end }}
clusters:
{{ toYaml .Values.clusters | indent 2 }}
{{- end -}}
