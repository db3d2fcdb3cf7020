{{/* Chart name, truncated to the 63 characters of a DNS-1123 label. */}}
{{- define "koc-example.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "koc-example.fullname" -}}
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

{{- define "koc-example.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "koc-example.labels" -}}
helm.sh/chart: {{ include "koc-example.chart" . }}
{{ include "koc-example.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "koc-example.selectorLabels" -}}
app.kubernetes.io/name: {{ include "koc-example.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "koc-example.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "koc-example.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Lease name: leaderElection.resourceName or the fullname. */}}
{{- define "koc-example.leaseName" -}}
{{- default (include "koc-example.fullname" .) .Values.leaderElection.resourceName }}
{{- end }}
