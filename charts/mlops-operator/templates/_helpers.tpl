{{/*
The chart's name, or nameOverride; cut at 63 characters (a DNS label).
*/}}
{{- define "mlops-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The fully qualified name of the release's objects: fullnameOverride, else
<release>-<name> (just <release> when it already contains the name); cut at 63 characters
because some Kubernetes name fields are DNS labels.
*/}}
{{- define "mlops-operator.fullname" -}}
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

{{/*
A name derived from the fullname with a suffix, still within 63 characters.
Usage: include "mlops-operator.componentName" (list . "dashboard")
*/}}
{{- define "mlops-operator.componentName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $base := include "mlops-operator.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end -}}

{{/*
chart: <name>-<version>, for the helm.sh/chart label.
*/}}
{{- define "mlops-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object.
*/}}
{{- define "mlops-operator.labels" -}}
helm.sh/chart: {{ include "mlops-operator.chart" . }}
{{ include "mlops-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlops-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The labels that select the operator's Pods (immutable once deployed).
*/}}
{{- define "mlops-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlops-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
The operator's ServiceAccount: created (fullname unless named) or an existing one.
*/}}
{{- define "mlops-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "mlops-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The image reference: repository, then @digest when set, else :tag (appVersion by default).
*/}}
{{- define "mlops-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The claim of the default model store: an existing one, or the one the chart creates.
*/}}
{{- define "mlops-operator.modelStoreClaim" -}}
{{- if .Values.modelStore.persistence.existingClaim -}}
{{- .Values.modelStore.persistence.existingClaim -}}
{{- else -}}
{{- include "mlops-operator.componentName" (list . "models") -}}
{{- end -}}
{{- end -}}

{{/*
The default model store URI: modelStore.uri, else the root of the model-store claim.
*/}}
{{- define "mlops-operator.modelStoreUri" -}}
{{- if .Values.modelStore.uri -}}
{{- .Values.modelStore.uri -}}
{{- else if or .Values.modelStore.persistence.enabled .Values.modelStore.persistence.existingClaim -}}
{{- printf "pvc://%s" (include "mlops-operator.modelStoreClaim" .) -}}
{{- end -}}
{{- end -}}

{{/*
The NetworkPolicy peers that may scrape metrics (JSON): the operator's Pods, and Prometheus
when networkPolicy.prometheus names it.
*/}}
{{- define "mlops-operator.metricsFrom" -}}
{{- $operator := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace)) "podSelector" (dict "matchLabels" (include "mlops-operator.selectorLabels" . | fromYaml)) -}}
{{- $peers := list $operator -}}
{{- with .Values.networkPolicy.prometheus -}}
{{- if or .namespaceSelector .podSelector -}}
{{- $peers = append $peers (include "mlops-operator.prometheusPeer" $ | fromJson) -}}
{{- end -}}
{{- end -}}
{{- toJson $peers -}}
{{- end }}

{{- define "mlops-operator.prometheusPeer" -}}
{{- $peer := dict -}}
{{- with .Values.networkPolicy.prometheus.namespaceSelector }}{{- $_ := set $peer "namespaceSelector" (dict "matchLabels" .) -}}{{- end -}}
{{- with .Values.networkPolicy.prometheus.podSelector }}{{- $_ := set $peer "podSelector" (dict "matchLabels" .) -}}{{- end -}}
{{- toJson $peer -}}
{{- end }}
