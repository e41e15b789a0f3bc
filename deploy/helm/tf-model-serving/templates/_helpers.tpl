{{- define "tfms.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tfms.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tfms.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "tfms.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "tfms.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tfms.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tfms.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tfms.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tfms.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Whole CPUs of the limit ("2", "2500m"); TensorFlow gets all but one, the event loop one (the
server's own default, which cannot count a pod's CPUs itself: its CPU set is the node's). */}}
{{- define "tfms.intraOpThreads" -}}
{{- $cpu := toString (.Values.resources.limits.cpu | default "2") -}}
{{- $cores := 0 -}}
{{- if hasSuffix "m" $cpu -}}
{{- $cores = div (atoi (trimSuffix "m" $cpu)) 1000 -}}
{{- else -}}
{{- $cores = int (floor (float64 $cpu)) -}}
{{- end -}}
{{- max 1 (sub $cores 1) -}}
{{- end -}}

{{/* The SERVING_* environment shared by the Deployment and the InferenceService. */}}
{{- define "tfms.env" -}}
- name: SERVING_WORKERS
  value: {{ .Values.serving.workers | default 1 | quote }}
- name: SERVING_INTRA_OP_THREADS
  value: {{ include "tfms.intraOpThreads" . | quote }}
- name: SERVING_MAX_BATCH_SIZE
  value: {{ .Values.serving.maxBatchSize | quote }}
- name: SERVING_MAX_WAIT_MS
  value: {{ .Values.serving.maxWaitMs | quote }}
- name: SERVING_REQUEST_TIMEOUT_MS
  value: {{ .Values.serving.requestTimeoutMs | quote }}
- name: SERVING_DRAIN_SECONDS
  value: {{ .Values.serving.drainSeconds | quote }}
- name: SERVING_GRACEFUL_TIMEOUT_SECONDS
  value: {{ .Values.serving.gracefulTimeoutSeconds | quote }}
- name: SERVING_VERSION_POLICY
  value: {{ toJson .Values.models.versionPolicy | quote }}
- name: SERVING_REPOSITORY_POLL_SECONDS
  value: {{ .Values.models.pollSeconds | quote }}
- name: SERVING_MODEL_CACHE_DIR
  value: /cache
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Seconds Kubernetes waits after the preStop hook starts before it kills the pod. */}}
{{- define "tfms.terminationGrace" -}}
{{- add .Values.preStopSleepSeconds .Values.serving.gracefulTimeoutSeconds 10 -}}
{{- end -}}
