{{- define "broken.labels" -}}
helm.sh/chart: broken-0.1.0
app.kubernetes.io/name: broken
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: "1.0"
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end }}
