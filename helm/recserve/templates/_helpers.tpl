{{/* Names ------------------------------------------------------------------------------ */}}
{{- define "recserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "recserve.fullname" -}}
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

{{- define "recserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object name of a service: (dict "root" $ "name" "embedding_store") -> <fullname>-embedding-store */}}
{{- define "recserve.serviceName" -}}
{{- printf "%s-%s" (include "recserve.fullname" .root) (.name | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* In-cluster gRPC target for client-side round_robin over the headless Service. */}}
{{- define "recserve.grpcTarget" -}}
{{- printf "dns:///%s.%s.svc.cluster.local:%v" (include "recserve.serviceName" .) .root.Release.Namespace .root.Values.ports.grpc -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------- */}}
{{- define "recserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "recserve.labels" -}}
helm.sh/chart: {{ include "recserve.chart" . }}
{{ include "recserve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recserve
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "recserve.componentSelectorLabels" -}}
{{ include "recserve.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component | replace "_" "-" }}
{{- end -}}

{{- define "recserve.componentLabels" -}}
{{ include "recserve.labels" .root }}
app.kubernetes.io/component: {{ .component | replace "_" "-" }}
{{- end -}}

{{/* Image -------------------------------------------------------------------------------- */}}
{{/* (dict "image" .Values.image "default" .Chart.AppVersion) */}}
{{- define "recserve.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .default .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Redis ------------------------------------------------------------------------------ */}}
{{- define "recserve.redis.fullname" -}}
{{- printf "%s-redis" (include "recserve.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "recserve.redis.secretName" -}}
{{- if .Values.redis.enabled -}}
{{- default (include "recserve.redis.fullname" .) .Values.redis.auth.existingSecret -}}
{{- else -}}
{{- .Values.externalRedis.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "recserve.redis.secretKey" -}}
{{- if .Values.redis.enabled -}}
{{- .Values.redis.auth.existingSecretKey -}}
{{- else -}}
{{- .Values.externalRedis.existingSecretKey -}}
{{- end -}}
{{- end -}}

{{- define "recserve.redis.url" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s.%s.svc.cluster.local:6379/0" (include "recserve.redis.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- if not .Values.externalRedis.host -}}
{{- fail "redis.enabled=false needs externalRedis.host" -}}
{{- end -}}
{{- printf "%s://%s:%v/%v" (ternary "rediss" "redis" .Values.externalRedis.tls) .Values.externalRedis.host .Values.externalRedis.port .Values.externalRedis.db -}}
{{- end -}}
{{- end -}}

{{/* RECSERVE_REDIS_URL + RECSERVE_REDIS_PASSWORD env entries. */}}
{{- define "recserve.redis.env" -}}
- name: RECSERVE_REDIS_URL
  value: {{ include "recserve.redis.url" . | quote }}
{{- if include "recserve.redis.secretName" . }}
- name: RECSERVE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "recserve.redis.secretName" . }}
      key: {{ include "recserve.redis.secretKey" . }}
{{- end }}
{{- end -}}

{{/* Bundle volume claim name. */}}
{{- define "recserve.bundles.claimName" -}}
{{- default (printf "%s-bundles" (include "recserve.fullname" .)) .Values.bundles.existingClaim -}}
{{- end -}}

{{/* Security contexts (restricted Pod Security Standard). ------------------------------ */}}
{{- define "recserve.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "recserve.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* checkov skip annotations shared by every workload of this chart.
     CKV_K8S_43 (image by digest): set image.digest / redis.image.digest to pin; tags are the
     default so that `helm install` works before a release pipeline records digests.
     CKV_K8S_35 (secrets as env vars): docs/contracts.md defines RECSERVE_REDIS_PASSWORD /
     RECSERVE_AUTH_TOKEN as env vars; pods run without service account tokens and the
     Secret is namespaced. (dict "digest" <digest> "secretEnv" <bool>) */}}
{{- define "recserve.checkovSkips" -}}
{{- $i := 0 -}}
{{- if not .digest }}
{{- $i = add1 $i }}
checkov.io/skip{{ $i }}: CKV_K8S_43=Image pinned by tag by default; set image.digest to pin by digest
{{- end }}
{{- if .secretEnv }}
{{- $i = add1 $i }}
checkov.io/skip{{ $i }}: CKV_K8S_35=docs/contracts.md passes the Redis password and gateway token as env vars
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rule to Redis (in-cluster pods or externalRedis.cidrs). */}}
{{- define "recserve.np.redisEgress" -}}
- to:
  {{- if .Values.redis.enabled }}
    - podSelector:
        matchLabels:
          {{- include "recserve.componentSelectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  {{- else }}
  {{- range .Values.externalRedis.cidrs }}
    - ipBlock:
        cidr: {{ . }}
  {{- end }}
  {{- end }}
  ports:
    - port: {{ ternary 6379 .Values.externalRedis.port .Values.redis.enabled }}
      protocol: TCP
{{- end }}
