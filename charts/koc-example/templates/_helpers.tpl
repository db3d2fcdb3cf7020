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

{{/*
A Go duration ("25s", "1m30s", "500ms", "0") as a number of seconds (a
decimal string; pipe it through float64).  values.schema.json admits only
well-formed durations, so every part matches here.
*/}}
{{- define "koc-example.seconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "μs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|μs|ms|s|m|h)" (toString .) -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $n) (get $units (trimPrefix $n .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
terminationGracePeriodSeconds: shutdown.drainBudget + shutdown.terminationMargin,
rounded up to whole seconds.  The budget counts from SIGTERM and includes
shutdown.delay (which must be shorter); when it ends, the forced step-down
gets 2 s more; the margin covers that and the exit.  kubelet sends SIGKILL at
the end of the grace period, so all of it must fit in it.
*/}}
{{- define "koc-example.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown }}
{{- $sum := addf (include "koc-example.seconds" $s.drainBudget | float64) (include "koc-example.seconds" $s.terminationMargin | float64) }}
{{- ceil $sum | int }}
{{- end }}

{{/*
The lease timings the elector refuses at start-up, refused at install time
instead, with the values' names.
*/}}
{{- define "koc-example.checkLeaderElection" -}}
{{- $le := .Values.leaderElection }}
{{- if and .Values.webhook.enabled $le.enabled $le.gateReadiness }}
{{- fail "webhook.enabled needs leaderElection.gateReadiness: false: webhooks are served by every replica, and gated readiness would take every standby out of the webhook Service" }}
{{- end }}
{{- $lease := include "koc-example.seconds" $le.leaseDuration | float64 }}
{{- $renew := include "koc-example.seconds" $le.renewDeadline | float64 }}
{{- $retry := include "koc-example.seconds" $le.retryPeriod | float64 }}
{{- if le $retry 0.0 }}
{{- fail (printf "leaderElection.retryPeriod (%s) must be above zero" $le.retryPeriod) }}
{{- end }}
{{- if ge $renew $lease }}
{{- fail (printf "leaderElection.renewDeadline (%s) must be shorter than leaderElection.leaseDuration (%s)" $le.renewDeadline $le.leaseDuration) }}
{{- end }}
{{- if gt $retry $renew }}
{{- fail (printf "leaderElection.retryPeriod (%s) must not be longer than leaderElection.renewDeadline (%s)" $le.retryPeriod $le.renewDeadline) }}
{{- end }}
{{- $s := .Values.shutdown }}
{{- if ge (include "koc-example.seconds" $s.delay | float64) (include "koc-example.seconds" $s.drainBudget | float64) }}
{{- fail (printf "shutdown.delay (%s) must be shorter than shutdown.drainBudget (%s): the budget counts from SIGTERM and includes the delay" $s.delay $s.drainBudget) }}
{{- end }}
{{- if lt (include "koc-example.seconds" $s.terminationMargin | float64) 2.0 }}
{{- fail (printf "shutdown.terminationMargin (%s) must be at least 2s: after the drain budget the forced step-down gets 2 s to release the Lease before the exit" $s.terminationMargin) }}
{{- end }}
{{- end }}

