{{/*
_helpers.tpl: names, labels and derived strings shared by the templates.
Only string assembly happens here; node ids and contact points are derived
by the brokers themselves (docs/configuration.md, cluster.nodeIdFromHostname
and cluster.initialContactPointsTemplate).
*/}}

{{/* The release's base name: pods are <fullname>-broker-<ordinal>. */}}
{{- define "tandem.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "tandem.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tandem.brokerSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: broker
{{- end -}}

{{- define "tandem.gatewaySelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{/* Brokers of this region: clusterSize / regions. */}}
{{- define "tandem.brokerReplicas" -}}
{{- div (int .Values.cluster.clusterSize) (int .Values.cluster.regions) -}}
{{- end -}}

{{/* The brokers' contact point template: every region runs the same
release name, in its own namespace. */}}
{{- define "tandem.contactPointTemplate" -}}
{{- if .Values.cluster.contactPointTemplate -}}
{{- .Values.cluster.contactPointTemplate -}}
{{- else -}}
{{- $fullname := include "tandem.fullname" . -}}
{{ $fullname }}-broker-{ordinal}.{{ $fullname }}-broker.{namespace}.svc.{{ .Values.clusterDomain }}:26502
{{- end -}}
{{- end -}}

{{/* The standalone gateways' contact points: the command API (26501) of
every broker of this region, comma-separated. */}}
{{- define "tandem.gatewayContactPoints" -}}
{{- $fullname := include "tandem.fullname" . -}}
{{- range $i := until (int (include "tandem.brokerReplicas" .)) -}}
{{- if $i }},{{ end -}}
{{ $fullname }}-broker-{{ $i }}.{{ $fullname }}-broker.{{ $.Release.Namespace }}.svc.{{ $.Values.clusterDomain }}:26501
{{- end -}}
{{- end -}}
