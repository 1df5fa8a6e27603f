{{/*
Names. Kubernetes names are at most 63 characters (DNS labels).
*/}}
{{- define "fleetca.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "fleetca.fullname" -}}
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

{{/* A name derived from the fullname: fullname-SUFFIX, within 63 characters. */}}
{{- define "fleetca.suffixedName" -}}
{{- $full := include "fleetca.fullname" .ctx }}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .suffix))) | trimSuffix "-") .suffix }}
{{- end }}

{{- define "fleetca.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The gRPC Service is named after the release (fullname); the HTTP one fullname-http. */}}
{{- define "fleetca.grpcServiceName" -}}
{{- include "fleetca.fullname" . }}
{{- end }}

{{- define "fleetca.httpServiceName" -}}
{{- include "fleetca.suffixedName" (dict "ctx" . "suffix" "http") }}
{{- end }}

{{- define "fleetca.configMapName" -}}
{{- include "fleetca.fullname" . }}
{{- end }}

{{- define "fleetca.migrationName" -}}
{{- include "fleetca.suffixedName" (dict "ctx" . "suffix" "migrate") }}
{{- end }}

{{- define "fleetca.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "fleetca.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "fleetca.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Labels. selectorLabels never change over the life of a release (Deployment selectors are
immutable); "fleetca.serverSelectorLabels" adds the component of the server pods.
*/}}
{{- define "fleetca.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fleetca.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "fleetca.serverSelectorLabels" -}}
{{ include "fleetca.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/* Common labels, without the component (each object adds its own). */}}
{{- define "fleetca.labels" -}}
helm.sh/chart: {{ include "fleetca.chart" . }}
{{ include "fleetca.selectorLabels" . }}
app.kubernetes.io/version: {{ include "fleetca.imageTag" . | replace "+" "_" | replace "@" "_" | replace ":" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fleetca
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "fleetca.serverLabels" -}}
{{ include "fleetca.labels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "fleetca.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fleetca.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Secrets. The chart's Secret unless existingSecret is given; the required messages say what
to set when neither is.
*/}}
{{- define "fleetca.createSecret" -}}
{{- if not .Values.existingSecret }}true{{ end }}
{{- end }}

{{- define "fleetca.secretName" -}}
{{- .Values.existingSecret | default (include "fleetca.fullname" .) }}
{{- end }}

{{- define "fleetca.databaseUrlKey" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecretKeys.databaseUrl }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "fleetca.kekKey" -}}
{{- if .Values.existingSecret }}{{ .Values.existingSecretKeys.kek }}{{ else }}kek{{ end }}
{{- end }}

{{/* The secret keys of the previous KEKs, as a JSON list (fromJsonArray-free: a dict). */}}
{{- define "fleetca.previousKekKeys" -}}
{{- $keys := list }}
{{- if .Values.existingSecret }}
{{- $keys = .Values.existingSecretKeys.previousKeks }}
{{- else }}
{{- range $i, $_ := .Values.previousKeks }}
{{- $keys = append $keys (printf "previous-kek-%d" $i) }}
{{- end }}
{{- end }}
{{- toJson (dict "keys" $keys) }}
{{- end }}

{{- define "fleetca.requiredDatabaseUrl" -}}
{{- required "databaseUrl is required: the PostgreSQL URL, e.g. --set databaseUrl=postgresql://fleetca:PASSWORD@postgres:5432/fleetca (or set existingSecret to a Secret holding it)" .Values.databaseUrl }}
{{- end }}

{{- define "fleetca.requiredKek" -}}
{{- required "kek is required: the key-encryption key printed by `fleetca-server gen-kek --kek_id=kek-1` (or set existingSecret to a Secret holding it)" .Values.kek }}
{{- end }}

{{/* TLS: self-issued into an emptyDir, or a kubernetes.io/tls Secret. */}}
{{- define "fleetca.tlsServerNames" -}}
{{- $svc := include "fleetca.grpcServiceName" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- concat $names .Values.tls.extraServerNames | uniq | join "," }}
{{- end }}

{{- define "fleetca.publicBaseUrl" -}}
{{- if .Values.config.publicBaseUrl }}
{{- .Values.config.publicBaseUrl | trimSuffix "/" }}
{{- else }}
{{- $host := printf "%s.%s.svc.%s" (include "fleetca.httpServiceName" .) .Release.Namespace .Values.clusterDomain }}
{{- if eq (int .Values.service.http.port) 80 }}
{{- printf "http://%s" $host }}
{{- else }}
{{- printf "http://%s:%d" $host (int .Values.service.http.port) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Paths inside the server containers. */}}
{{- define "fleetca.paths" -}}
tlsDir: /var/run/fleetca/tls
adminDir: /var/run/fleetca/admin
kekDir: /var/run/fleetca/keks
kekSourceDir: /var/run/secrets/fleetca/keks
tlsSecretDir: /var/run/secrets/fleetca/tls
{{- end }}

{{/*
Checks across values that the schema cannot express; included by the Deployment so that a
bad combination fails the render with a message.
*/}}
{{- define "fleetca.validate" -}}
{{- if .Values.existingSecret }}
{{- if or .Values.databaseUrl .Values.kek .Values.previousKeks }}
{{- fail "existingSecret is set: leave databaseUrl, kek and previousKeks empty (they would be ignored)" }}
{{- end }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int .Values.config.shutdownGraceSeconds) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.shutdownGraceSeconds (%d): the kubelet kills the server before in-flight calls end" (int .Values.terminationGracePeriodSeconds) (int .Values.config.shutdownGraceSeconds)) }}
{{- end }}
{{- if and .Values.pdb.enabled (ne (toString .Values.pdb.minAvailable) "") (ne (toString .Values.pdb.maxUnavailable) "") }}
{{- fail "pdb: set minAvailable or maxUnavailable, not both (set the other to \"\")" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (lt (int .Values.autoscaling.maxReplicas) (int .Values.autoscaling.minReplicas)) }}
{{- fail "autoscaling.maxReplicas must be at least autoscaling.minReplicas" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.resources.requests.cpu) }}
{{- fail "autoscaling needs resources.requests.cpu (utilization is relative to it)" }}
{{- end }}
{{- if eq .Values.containerPorts.grpc .Values.containerPorts.http }}
{{- fail "containerPorts.grpc and containerPorts.http must differ" }}
{{- end }}
{{- end }}

{{/* Environment shared by the server and init containers: secrets. */}}
{{- define "fleetca.secretEnv" -}}
- name: FLEETCA_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "fleetca.secretName" . }}
      key: {{ include "fleetca.databaseUrlKey" . }}
- name: FLEETCA_KEK
  valueFrom:
    secretKeyRef:
      name: {{ include "fleetca.secretName" . }}
      key: {{ include "fleetca.kekKey" . }}
{{- end }}
