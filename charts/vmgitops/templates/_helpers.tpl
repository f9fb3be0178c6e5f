{{/* Names: <release>-vmgitops, or the release name when it already says vmgitops. */}}
{{- define "vmgitops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vmgitops.fullname" -}}
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

{{/* Cluster-scoped objects carry the release namespace too: two releases of the same
name in two namespaces (shards) must not share a ClusterRole. */}}
{{- define "vmgitops.clusterName" -}}
{{- printf "%s-%s" (include "vmgitops.fullname" .) .Release.Namespace | trunc 253 | trimSuffix "-" -}}
{{- end -}}

{{- define "vmgitops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vmgitops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "vmgitops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vmgitops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "vmgitops.labels" -}}
{{ include "vmgitops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vmgitops
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "vmgitops.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The shards to run: sharding.shards, or one unnamed shard with watchNamespaces. */}}
{{- define "vmgitops.shards" -}}
{{- if .Values.sharding.shards -}}
{{- if .Values.watchNamespaces -}}
{{- fail "use either watchNamespaces or sharding.shards, not both: each shard lists its own namespaces" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range .Values.sharding.shards -}}
{{- range .namespaces -}}
{{- if hasKey $seen . -}}
{{- fail (printf "namespace %s is in two shards; kopf cannot split a namespace between operators" .) -}}
{{- end -}}
{{- $_ := set $seen . true -}}
{{- end -}}
{{- end -}}
{{- toJson .Values.sharding.shards -}}
{{- else -}}
{{- toJson (list (dict "name" "" "namespaces" .Values.watchNamespaces)) -}}
{{- end -}}
{{- end -}}

{{/* Every namespace any shard watches (JSON list); empty means every namespace. */}}
{{- define "vmgitops.watchedNamespaces" -}}
{{- $all := list -}}
{{- range (include "vmgitops.shards" . | fromJsonArray) -}}
{{- $all = concat $all .namespaces -}}
{{- end -}}
{{- toJson (uniq $all) -}}
{{- end -}}

{{/* True when a watched namespace is a kopf pattern (globs, negations), not a name. */}}
{{- define "vmgitops.hasPatterns" -}}
{{- $p := false -}}
{{- range (include "vmgitops.watchedNamespaces" . | fromJsonArray) -}}
{{- if regexMatch "[*?!\\[,]" . -}}{{- $p = true -}}{{- end -}}
{{- end -}}
{{- ternary "true" "" $p -}}
{{- end -}}

{{/* "cluster" or "namespaced": rbac.scope with auto resolved. */}}
{{- define "vmgitops.rbacScope" -}}
{{- $ns := include "vmgitops.watchedNamespaces" . | fromJsonArray -}}
{{- $patterns := include "vmgitops.hasPatterns" . -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- if not $ns -}}{{- fail "rbac.scope namespaced needs watchNamespaces (or sharding.shards): the operator would watch every namespace" -}}{{- end -}}
{{- if $patterns -}}{{- fail "rbac.scope namespaced needs exact namespace names; patterns such as team-* need cluster-wide RBAC" -}}{{- end -}}
namespaced
{{- else if eq .Values.rbac.scope "cluster" -}}
cluster
{{- else if and $ns (not $patterns) -}}
namespaced
{{- else -}}
cluster
{{- end -}}
{{- end -}}

{{/* The rules the operator needs in each namespace it watches (see rbac.yaml). */}}
{{- define "vmgitops.namespacedRules" }}
- apiGroups: [vmgitops.io]
  resources: [virtualmachinetargets, vmapplications, promotions, promotionpipelines]
  verbs: [get, list, watch, patch]
- apiGroups: [vmgitops.io]
  resources: [promotions]
  verbs: [create, delete]
- apiGroups: [vmgitops.io]
  resources:
    - virtualmachinetargets/status
    - vmapplications/status
    - promotions/status
    - promotionpipelines/status
  verbs: [get, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- if .Values.rbac.argoCDApplications }}
- apiGroups: [argoproj.io]
  resources: [applications]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end }}
