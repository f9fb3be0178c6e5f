{{- define "vmgitops.name" -}}{{ .Release.Name }}-vmgitops{{- end -}}
{{- define "vmgitops.serviceAccountName" -}}
{{- if .Values.serviceAccount.name }}{{ .Values.serviceAccount.name }}{{ else }}{{ include "vmgitops.name" . }}{{ end -}}
{{- end -}}
{{- define "vmgitops.labels" -}}
app.kubernetes.io/name: vmgitops
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
