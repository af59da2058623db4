{{/* Chart name. */}}
{{- define "regcreds.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "regcreds.fullname" -}}
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

{{/* The uninstall hook's Job, ServiceAccount and RBAC: the full name and "-cleanup", within 63 characters. */}}
{{- define "regcreds.cleanupName" -}}
{{- printf "%s-cleanup" (include "regcreds.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "regcreds.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "regcreds.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regcreds.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The labels of every object: the chart's own, then commonLabels (which cannot override them). */}}
{{- define "regcreds.labels" -}}
{{- $labels := dict
  "helm.sh/chart" (include "regcreds.chart" .)
  "app.kubernetes.io/name" (include "regcreds.name" .)
  "app.kubernetes.io/instance" .Release.Name
  "app.kubernetes.io/version" .Chart.AppVersion
  "app.kubernetes.io/managed-by" .Release.Service
  "app.kubernetes.io/part-of" "regcreds" }}
{{- toYaml (merge $labels (deepCopy (default (dict) .Values.commonLabels))) }}
{{- end }}

{{/* The Deployment's pod labels: its selector labels, the ACR workload-identity switch, podLabels, then
commonLabels (neither can override the selector). */}}
{{- define "regcreds.podLabels" -}}
{{- $labels := dict "app.kubernetes.io/name" (include "regcreds.name" .) "app.kubernetes.io/instance" .Release.Name }}
{{- if and .Values.providers.acr.enabled (eq .Values.providers.acr.auth "workload-identity") }}
{{- $_ := set $labels "azure.workload.identity/use" "true" }}
{{- end }}
{{- toYaml (merge $labels (deepCopy (default (dict) .Values.podLabels)) (deepCopy (default (dict) .Values.commonLabels))) }}
{{- end }}

{{/* A security context without runAsUser, runAsGroup and fsGroup when openshift.enabled: OpenShift's
restricted SCCs assign them from the namespace's range and reject fixed ones. */}}
{{- define "regcreds.securityContext" -}}
{{- $context := deepCopy (default (dict) .context) }}
{{- if .root.Values.openshift.enabled }}
{{- $context = omit $context "runAsUser" "runAsGroup" "fsGroup" }}
{{- end }}
{{- with $context }}{{ toYaml . }}{{ end }}
{{- end }}

{{/* Whether Prometheus finds the pods through their prometheus.io annotations: only when no
ServiceMonitor or PodMonitor is requested (else the pods would be scraped twice). */}}
{{- define "regcreds.scrapeAnnotations" -}}
{{- with .Values.metrics }}
{{- if and .podAnnotations (not .serviceMonitor.enabled) (not .podMonitor.enabled) }}true{{ end }}
{{- end }}
{{- end }}

{{- define "regcreds.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "regcreds.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "regcreds.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* A list or a comma-separated string, as one comma-separated string. */}}
{{- define "regcreds.csv" -}}
{{- if kindIs "slice" . }}{{ join "," . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* A numeric ID as written: YAML numbers reach templates as float64 (12345678 would print 1.2345678e+07). */}}
{{- define "regcreds.id" -}}
{{- if kindIs "float64" . }}{{ printf "%.0f" . }}{{ else }}{{ . }}{{ end }}
{{- end }}

{{/* env entry reading key .key of Secret .secret. */}}
{{- define "regcreds.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
      optional: false
{{- end }}

{{/* Fails early on settings that cannot work, instead of a crash-looping pod. */}}
{{- define "regcreds.validate" -}}
{{- $p := .Values.providers }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: replicas would otherwise write concurrently" }}
{{- end }}
{{- if not (or $p.static.enabled $p.dockerconfigjson.enabled $p.dockerhub.enabled $p.ecr.enabled $p.gcr.enabled $p.acr.enabled $p.ghcr.enabled $p.quay.enabled) }}
{{- fail "enable at least one provider: providers.<static|dockerconfigjson|dockerhub|ecr|gcr|acr|ghcr|quay>.enabled=true" }}
{{- end }}
{{- if $p.static.enabled }}
{{- if not $p.static.server }}{{ fail "providers.static.server is required" }}{{ end }}
{{- if not $p.static.existingSecret }}{{ fail "providers.static.existingSecret is required (Secret with the user and password)" }}{{ end }}
{{- end }}
{{- if and $p.dockerconfigjson.enabled (not $p.dockerconfigjson.existingSecret) }}
{{- fail "providers.dockerconfigjson.existingSecret is required (Secret with the .dockerconfigjson document)" }}
{{- end }}
{{- if and $p.dockerhub.enabled (not $p.dockerhub.existingSecret) }}
{{- fail "providers.dockerhub.existingSecret is required (Secret with the Docker ID and access token)" }}
{{- end }}
{{- if and $p.ecr.enabled (not $p.ecr.regions) (not $p.ecr.public) }}
{{- fail "providers.ecr.regions needs at least one region (or set providers.ecr.public=true)" }}
{{- end }}
{{- if and $p.gcr.enabled (not $p.gcr.existingSecret) (not $p.gcr.useMetadata) }}
{{- fail "providers.gcr.existingSecret is required (Secret with the service-account key JSON), or set providers.gcr.useMetadata=true" }}
{{- end }}
{{- if and $p.gcr.enabled $p.gcr.existingSecret $p.gcr.useMetadata }}
{{- fail "providers.gcr: set existingSecret or useMetadata, not both" }}
{{- end }}
{{- if $p.acr.enabled }}
{{- if not $p.acr.registry }}{{ fail "providers.acr.registry is required" }}{{ end }}
{{- if not (has $p.acr.auth (list "client-secret" "workload-identity" "managed-identity" "static")) }}
{{- fail (printf "providers.acr.auth must be client-secret, workload-identity, managed-identity or static, not %q" $p.acr.auth) }}
{{- end }}
{{- if and (has $p.acr.auth (list "client-secret" "static")) (not $p.acr.existingSecret) }}
{{- fail (printf "providers.acr.existingSecret is required with auth=%s" $p.acr.auth) }}
{{- end }}
{{- if and (eq $p.acr.auth "client-secret") (or (not $p.acr.tenantId) (not $p.acr.clientId)) }}
{{- fail "providers.acr.tenantId and providers.acr.clientId are required with auth=client-secret" }}
{{- end }}
{{- end }}
{{- if $p.ghcr.enabled }}
{{- if or (not $p.ghcr.appId) (not $p.ghcr.installationId) }}{{ fail "providers.ghcr.appId and providers.ghcr.installationId are required" }}{{ end }}
{{- if not $p.ghcr.existingSecret }}{{ fail "providers.ghcr.existingSecret is required (Secret with the GitHub App's private key .pem)" }}{{ end }}
{{- /* regcreds refuses to start the App provider without a probe on its registry (ghcr.io accepts App
       tokens at login but users report it denies pulls with them); say so at install, not in a crash loop. */}}
{{- $registry := lower (default "ghcr.io" $p.ghcr.registry) }}
{{- $probed := false }}
{{- range .Values.checks.images }}{{ if hasPrefix (printf "%s/" $registry) (lower .) }}{{ $probed = true }}{{ end }}{{ end }}
{{- if not $probed }}
{{- fail (printf "providers.ghcr needs a probe image on %s in checks.images (REGCREDS_CHECK_IMAGES), e.g. [%s/my-org/my-private-app:latest]: every App token is verified against it before it reaches a namespace. For ghcr.io GitHub documents a personal access token (classic): providers.static" $registry $registry) }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.serviceMonitor.enabled .Values.metrics.podMonitor.enabled }}
{{- fail "enable metrics.serviceMonitor or metrics.podMonitor, not both: Prometheus would scrape every pod twice" }}
{{- end }}
{{- if and .Values.networkPolicy.enabled (not .Values.networkPolicy.apiServer.cidrs) }}
{{- fail "networkPolicy.apiServer.cidrs is required with networkPolicy.enabled: the API server's addresses (kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes), e.g. [10.0.0.10/32]" }}
{{- end }}
{{- if and $p.quay.enabled (not $p.quay.robot) }}
{{- fail "providers.quay.robot is required (<organization>+<robot>, federated with this cluster's ServiceAccount issuer)" }}
{{- end }}
{{- end }}
