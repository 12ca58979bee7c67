{{/* Names, labels and shared values of the tokenfleet chart. */}}

{{- define "tokenfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-tokenfleet, or the release name when it already says tokenfleet. */}}
{{- define "tokenfleet.fullname" -}}
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

{{- define "tokenfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object. helm.sh/chart and the version change on upgrade: never in selectors. */}}
{{- define "tokenfleet.labels" -}}
helm.sh/chart: {{ include "tokenfleet.chart" . }}
app.kubernetes.io/name: {{ include "tokenfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tokenfleet
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of the objects that make up the operator itself (Deployment, Service, ServiceAccount...). */}}
{{- define "tokenfleet.operatorLabels" -}}
{{ include "tokenfleet.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The stable labels that select the operator's pods. */}}
{{- define "tokenfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tokenfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the operator's pods: the selector plus stable labels (no chart version, no rollout per chart bump). */}}
{{- define "tokenfleet.podLabels" -}}
{{ include "tokenfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tokenfleet
{{- end -}}

{{- define "tokenfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tokenfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image, pinned: repository@digest when a digest is given, else repository:tag. */}}
{{- define "tokenfleet.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Peering is on with more than one operator pod, or when asked for. */}}
{{- define "tokenfleet.peering" -}}
{{- if or .Values.peering.enabled (gt (int .Values.replicaCount) 1) -}}
{{- default (include "tokenfleet.fullname" .) .Values.peering.name -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that get the workload NetworkPolicies. */}}
{{- define "tokenfleet.policyNamespaces" -}}
{{- $ns := .Values.networkPolicy.namespaces | default .Values.watchNamespaces | default (list .Release.Namespace) -}}
{{- toJson $ns -}}
{{- end -}}
