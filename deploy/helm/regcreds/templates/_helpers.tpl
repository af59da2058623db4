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
{{- if not .Values.secretMode.enabled }}
{{- if not .Values.kubeletPlugin.enabled }}
{{- fail "secretMode.enabled=false leaves only the kubelet plugin: set kubeletPlugin.enabled=true (or keep secretMode.enabled)" }}
{{- end }}
{{- $served := include "regcreds.kubeletPlugin.served" . | fromJsonArray }}
{{- range $name := list "static" "dockerconfigjson" "dockerhub" "ecr" "gcr" "acr" "ghcr" "quay" }}
{{- if and (index $p $name).enabled (not (has $name $served)) }}
{{- fail (printf "providers.%s is enabled but would serve nothing: secretMode.enabled=false and the kubelet plugin does not serve it (kubeletPlugin.providers, or a provider that needs a pod's token without kubeletPlugin.tokenAttributes)" $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* === plugin mode (kubeletPlugin) === */}}

{{/* The namespace of the plugin's DaemonSet and ConfigMap. */}}
{{- define "regcreds.kubeletPlugin.namespace" -}}
{{- default .Release.Namespace .Values.kubeletPlugin.namespace }}
{{- end }}

{{/* The DaemonSet's and ConfigMap's name: the full name and "-kubelet-plugin", within 63 characters. */}}
{{- define "regcreds.kubeletPlugin.name" -}}
{{- printf "%s-kubelet-plugin" (include "regcreds.fullname" . | trunc 48 | trimSuffix "-") }}
{{- end }}

{{/* Why provider $name cannot serve the kubelet (empty when it can): the plugin runs as the kubelet's child
on the node, without a ServiceAccount token of its own; it gets the pulling pod's only in ServiceAccount
token mode (kubeletPlugin.tokenAttributes). */}}
{{- define "regcreds.kubeletPlugin.unsupported" -}}
{{- $p := index .root.Values.providers .name }}
{{- $tokens := .root.Values.kubeletPlugin.tokenAttributes }}
{{- if and (eq .name "quay") (not $tokens) }}robot federation exchanges a ServiceAccount token, which the kubelet passes the plugin only with kubeletPlugin.tokenAttributes (ServiceAccount token mode)
{{- else if and (eq .name "acr") (eq $p.auth "workload-identity") (not $tokens) }}auth=workload-identity needs the pod's federated token: set kubeletPlugin.tokenAttributes (ServiceAccount token mode), or use managed-identity (the node's) or client-secret
{{- end }}
{{- end }}

{{/* The providers the plugin serves, as a JSON list: kubeletPlugin.providers, or every enabled provider that
plugin mode supports. Fails on a listed provider that is not enabled or not supported. */}}
{{- define "regcreds.kubeletPlugin.served" -}}
{{- $root := . }}
{{- $served := list }}
{{- if .Values.kubeletPlugin.providers }}
{{- range $name := .Values.kubeletPlugin.providers }}
{{- $p := index $root.Values.providers $name }}
{{- if not $p.enabled }}
{{- fail (printf "kubeletPlugin.providers lists %s, but providers.%s.enabled is false: the plugin uses the same provider values" $name $name) }}
{{- end }}
{{- with include "regcreds.kubeletPlugin.unsupported" (dict "root" $root "name" $name) }}
{{- fail (printf "kubeletPlugin.providers lists %s, which cannot serve the kubelet: %s" $name .) }}
{{- end }}
{{- $served = append $served $name }}
{{- end }}
{{- else }}
{{- range $name := list "static" "dockerconfigjson" "dockerhub" "ecr" "gcr" "acr" "ghcr" "quay" }}
{{- $p := index $root.Values.providers $name }}
{{- if and $p.enabled (not (include "regcreds.kubeletPlugin.unsupported" (dict "root" $root "name" $name))) }}
{{- $served = append $served $name }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $served }}
{{- end }}

{{/* A registry as the kubelet matches images: without scheme and trailing slash (host[:port][/path]). */}}
{{- define "regcreds.kubeletPlugin.host" -}}
{{- . | trim | trimPrefix "https://" | trimPrefix "http://" | trimSuffix "/" }}
{{- end }}

{{/* A list, or a comma-separated string, as a list of trimmed non-empty strings. */}}
{{- define "regcreds.list" -}}
{{- $items := list }}
{{- $raw := . }}
{{- if not (kindIs "slice" $raw) }}{{ $raw = splitList "," (toString (default "" $raw)) }}{{ end }}
{{- range $raw }}
{{- with trim (toString .) }}{{ $items = append $items . }}{{ end }}
{{- end }}
{{- toJson $items }}
{{- end }}

{{/* The config's matchImages, as a JSON list: kubeletPlugin.matchImages, or the registries of the served
providers where the values name them. */}}
{{- define "regcreds.kubeletPlugin.matchImages" -}}
{{- $kp := .Values.kubeletPlugin }}
{{- $p := .Values.providers }}
{{- $served := include "regcreds.kubeletPlugin.served" . | fromJsonArray }}
{{- $images := list }}
{{- if $kp.matchImages }}
{{- $images = $kp.matchImages }}
{{- else }}
{{- if has "dockerconfigjson" $served }}
{{- fail "kubeletPlugin.matchImages is required when the plugin serves providers.dockerconfigjson: its registries are in the Secret, unknown when the chart renders. List them, e.g. [registry.example.com, \"*.registry.example.com\"]" }}
{{- end }}
{{- range $served }}
{{- if eq . "static" }}
{{- $images = append $images (include "regcreds.kubeletPlugin.host" $p.static.server) }}
{{- else if eq . "dockerhub" }}
{{- /* The kubelet asks about the normalized name, docker.io/library/nginx for "nginx". */}}
{{- $images = append $images "docker.io" }}
{{- else if eq . "ecr" }}
{{- range $region := include "regcreds.list" $p.ecr.regions | fromJsonArray }}
{{- $suffix := hasPrefix "cn-" $region | ternary "amazonaws.com.cn" "amazonaws.com" }}
{{- $accounts := include "regcreds.list" $p.ecr.accounts | fromJsonArray }}
{{- if $accounts }}
{{- range $accounts }}{{ $images = append $images (printf "%s.dkr.ecr.%s.%s" (include "regcreds.id" .) $region $suffix) }}{{ end }}
{{- else }}
{{- $images = append $images (printf "*.dkr.ecr.%s.%s" $region $suffix) }}
{{- end }}
{{- end }}
{{- if $p.ecr.public }}{{ $images = append $images "public.ecr.aws" }}{{ end }}
{{- else if eq . "gcr" }}
{{- $hosts := include "regcreds.list" $p.gcr.hosts | fromJsonArray }}
{{- range (empty $hosts | ternary (list "gcr.io") $hosts) }}{{ $images = append $images (include "regcreds.kubeletPlugin.host" .) }}{{ end }}
{{- else if eq . "acr" }}
{{- range include "regcreds.list" $p.acr.registry | fromJsonArray }}{{ $images = append $images (include "regcreds.kubeletPlugin.host" .) }}{{ end }}
{{- else if eq . "ghcr" }}
{{- $images = append $images (include "regcreds.kubeletPlugin.host" (default "ghcr.io" $p.ghcr.registry)) }}
{{- else if eq . "quay" }}
{{- $images = append $images (include "regcreds.kubeletPlugin.host" (default "quay.io" $p.quay.registry)) }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $images }}
{{- fail "kubeletPlugin.matchImages is required: the served providers name no registry (e.g. [registry.example.com])" }}
{{- end }}
{{- toJson (uniq $images) }}
{{- end }}

{{/* The provider's env list as container env entries named RC_ENV_<NAME> (the install script writes NAME), as
a JSON list of {name, value} or {name, valueFrom}: the served providers' variables from the same values as
the Deployment's (credentials by secretKeyRef from their existingSecret, never a literal), then
kubeletPlugin.env. Schedules, Secret names and in-pod file paths do not apply to the plugin. */}}
{{- define "regcreds.kubeletPlugin.env" -}}
{{- $p := .Values.providers }}
{{- $served := include "regcreds.kubeletPlugin.served" . | fromJsonArray }}
{{- $env := list }}
{{- $add := dict }}
{{- if has "static" $served }}{{ with $p.static }}
{{- $env = append $env (dict "name" "REGCREDS_STATIC_SERVER" "value" .server) }}
{{- $env = append $env (dict "name" "REGCREDS_STATIC_USER" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .userKey))) }}
{{- $env = append $env (dict "name" "REGCREDS_STATIC_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .passwordKey))) }}
{{- end }}{{ end }}
{{- if has "dockerconfigjson" $served }}{{ with $p.dockerconfigjson }}
{{- $env = append $env (dict "name" "REGCREDS_DOCKERCONFIGJSON" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .key))) }}
{{- end }}{{ end }}
{{- if has "dockerhub" $served }}{{ with $p.dockerhub }}
{{- $env = append $env (dict "name" "REGCREDS_DOCKERHUB_USER" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .userKey))) }}
{{- $env = append $env (dict "name" "REGCREDS_DOCKERHUB_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .passwordKey))) }}
{{- end }}{{ end }}
{{- if has "ecr" $served }}{{ with $p.ecr }}
{{- with .regions }}{{ $env = append $env (dict "name" "REGCREDS_ECR_REGIONS" "value" (include "regcreds.csv" .)) }}{{ end }}
{{- with .accounts }}{{ $env = append $env (dict "name" "REGCREDS_ECR_ACCOUNTS" "value" (include "regcreds.csv" .)) }}{{ end }}
{{- with .assumeRole }}{{ $env = append $env (dict "name" "REGCREDS_ECR_ASSUME_ROLE" "value" .) }}{{ end }}
{{- if .public }}{{ $env = append $env (dict "name" "REGCREDS_ECR_PUBLIC" "value" "true") }}{{ end }}
{{- with .assumeRoleExternalId }}{{ $env = append $env (dict "name" "REGCREDS_ECR_ASSUME_ROLE_EXTERNAL_ID" "value" .) }}{{ end }}
{{- with .endpointUrl }}{{ $env = append $env (dict "name" "REGCREDS_ECR_ENDPOINT_URL" "value" .) }}{{ end }}
{{- with .timeoutSeconds }}{{ $env = append $env (dict "name" "REGCREDS_ECR_TIMEOUT_SECONDS" "value" (toString .)) }}{{ end }}
{{- if .existingSecret }}
{{- $env = append $env (dict "name" "AWS_ACCESS_KEY_ID" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .accessKeyIdKey))) }}
{{- $env = append $env (dict "name" "AWS_SECRET_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .secretAccessKeyKey))) }}
{{- with .sessionTokenKey }}{{ $env = append $env (dict "name" "AWS_SESSION_TOKEN" "valueFrom" (dict "secretKeyRef" (dict "name" $p.ecr.existingSecret "key" .))) }}{{ end }}
{{- end }}
{{- end }}{{ end }}
{{- if has "gcr" $served }}{{ with $p.gcr }}
{{- if .useMetadata }}
{{- $env = append $env (dict "name" "REGCREDS_GCR_USE_METADATA" "value" "true") }}
{{- else }}
{{- $env = append $env (dict "name" "REGCREDS_GCR_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .key))) }}
{{- end }}
{{- with .hosts }}{{ $env = append $env (dict "name" "REGCREDS_GCR_HOSTS" "value" (include "regcreds.csv" .)) }}{{ end }}
{{- with .metadataUrl }}{{ $env = append $env (dict "name" "REGCREDS_GCR_METADATA_URL" "value" .) }}{{ end }}
{{- with .timeoutSeconds }}{{ $env = append $env (dict "name" "REGCREDS_GCR_TIMEOUT_SECONDS" "value" (toString .)) }}{{ end }}
{{- end }}{{ end }}
{{- if has "acr" $served }}{{ with $p.acr }}
{{- $env = append $env (dict "name" "REGCREDS_ACR_REGISTRY" "value" (include "regcreds.csv" .registry)) }}
{{- $env = append $env (dict "name" "REGCREDS_ACR_AUTH" "value" .auth) }}
{{- with .tenantId }}{{ $env = append $env (dict "name" "REGCREDS_ACR_TENANT_ID" "value" .) }}{{ end }}
{{- with .clientId }}{{ $env = append $env (dict "name" "REGCREDS_ACR_CLIENT_ID" "value" .) }}{{ end }}
{{- if .existingSecret }}
{{- $env = append $env (dict "name" "REGCREDS_ACR_CLIENT_SECRET" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .clientSecretKey))) }}
{{- end }}
{{- with .authorityHost }}{{ $env = append $env (dict "name" "REGCREDS_ACR_AUTHORITY_HOST" "value" .) }}{{ end }}
{{- with .exchangeUrl }}{{ $env = append $env (dict "name" "REGCREDS_ACR_EXCHANGE_URL" "value" .) }}{{ end }}
{{- with .scope }}{{ $env = append $env (dict "name" "REGCREDS_ACR_SCOPE" "value" .) }}{{ end }}
{{- with .timeoutSeconds }}{{ $env = append $env (dict "name" "REGCREDS_ACR_TIMEOUT_SECONDS" "value" (toString .)) }}{{ end }}
{{- end }}{{ end }}
{{- if has "ghcr" $served }}{{ with $p.ghcr }}
{{- $env = append $env (dict "name" "REGCREDS_GHCR_APP_ID" "value" (include "regcreds.id" .appId)) }}
{{- $env = append $env (dict "name" "REGCREDS_GHCR_INSTALLATION_ID" "value" (include "regcreds.id" .installationId)) }}
{{- $env = append $env (dict "name" "REGCREDS_GHCR_PRIVATE_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" .existingSecret "key" .key))) }}
{{- with .repositories }}{{ $env = append $env (dict "name" "REGCREDS_GHCR_REPOSITORIES" "value" (include "regcreds.csv" .)) }}{{ end }}
{{- with .permissions }}{{ $env = append $env (dict "name" "REGCREDS_GHCR_PERMISSIONS" "value" .) }}{{ end }}
{{- with .apiUrl }}{{ $env = append $env (dict "name" "REGCREDS_GHCR_API_URL" "value" .) }}{{ end }}
{{- with .registry }}{{ $env = append $env (dict "name" "REGCREDS_GHCR_REGISTRY" "value" .) }}{{ end }}
{{- with .timeoutSeconds }}{{ $env = append $env (dict "name" "REGCREDS_GHCR_TIMEOUT_SECONDS" "value" (toString .)) }}{{ end }}
{{- /* The App provider requires its probe image (see regcreds.validate). */}}
{{- with $.Values.checks.images }}{{ $env = append $env (dict "name" "REGCREDS_CHECK_IMAGES" "value" (include "regcreds.csv" .)) }}{{ end }}
{{- end }}{{ end }}
{{- if has "quay" $served }}{{ with $p.quay }}
{{- /* Token mode only (see regcreds.kubeletPlugin.unsupported): each request carries the pod's token, so
       no REGCREDS_QUAY_TOKEN_FILE (build_for_pods does not read one). */}}
{{- $env = append $env (dict "name" "REGCREDS_QUAY_ROBOT" "value" .robot) }}
{{- $env = append $env (dict "name" "REGCREDS_QUAY_REGISTRY" "value" .registry) }}
{{- with .federationUrl }}{{ $env = append $env (dict "name" "REGCREDS_QUAY_FEDERATION_URL" "value" .) }}{{ end }}
{{- with .timeoutSeconds }}{{ $env = append $env (dict "name" "REGCREDS_QUAY_TIMEOUT_SECONDS" "value" (toString .)) }}{{ end }}
{{- end }}{{ end }}
{{- $derived := list }}
{{- range $env }}{{ $derived = append $derived .name }}{{ end }}
{{- range .Values.kubeletPlugin.env }}
{{- if has .name $derived }}
{{- fail (printf "kubeletPlugin.env sets %s, which the chart derives from providers.*: set it there" .name) }}
{{- end }}
{{- $env = append $env . }}
{{- end }}
{{- toJson $env }}
{{- end }}

{{/* Why . is not an annotation key the kubelet accepts (empty when it is): IsQualifiedName of the key in lower
case (validateServiceAccountAnnotationKeys, k8s.io/kubernetes@v1.37.2 pkg/credentialprovider/plugin/config.go):
an optional DNS-1123 subdomain prefix of at most 253 characters and "/", then a name of at most 63. */}}
{{- define "regcreds.kubeletPlugin.annotationKeyProblem" -}}
{{- $key := toString . }}
{{- $parts := splitList "/" $key }}
{{- $name := last $parts }}
{{- if gt (len $parts) 2 }}a qualified name has at most one "/"
{{- else if and (eq (len $parts) 2) (not (regexMatch `^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$` (first $parts))) }}the prefix before "/" must be a DNS-1123 subdomain (e.g. example.com)
{{- else if and (eq (len $parts) 2) (gt (len (first $parts)) 253) }}the prefix before "/" is longer than 253 characters
{{- else if gt (len $name) 63 }}the name is longer than 63 characters
{{- else if not (regexMatch `^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$` $name) }}the name must be alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric character
{{- end }}
{{- end }}

{{/* The provider entry's tokenAttributes, as JSON ({} = ServiceAccount token mode off): kubeletPlugin.
tokenAttributes with the ServiceAccount annotation keys the served providers read where a list is not given
(a given list wins, even an empty one; the derived other list leaves out its keys, and the optional one
takes the derived keys a given required list lacks), checked as the kubelet checks them
(validateCredentialProviderConfig), so that the chart never writes a config the kubelet refuses at start. Annotation keys a provider cannot mint without are required when it is the only
served provider and requireServiceAccount is true (the kubelet then refuses the pull itself, naming the key);
otherwise every key is optional, so that a pod without one still gets the other providers' answers.
  ecr   REGCREDS_ECR_ROLE_ANNOTATION (a literal in kubeletPlugin.env), else eks.amazonaws.com/role-arn: needed
  acr   azure.workload.identity/client-id: needed (auth other than static); azure.workload.identity/tenant-id:
        needed when neither providers.acr.tenantId nor auth=client-secret names the tenant
  gcr   iam.gke.io/gcp-service-account, optional, when kubeletPlugin.env sets REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER
  quay  REGCREDS_QUAY_ROBOT_ANNOTATION (a literal in kubeletPlugin.env), optional (else providers.quay.robot) */}}
{{- define "regcreds.kubeletPlugin.tokenAttributes" -}}
{{- $ta := deepCopy (default (dict) .Values.kubeletPlugin.tokenAttributes) }}
{{- if $ta }}
{{- $at := "kubeletPlugin.tokenAttributes" }}
{{- /* values.schema.json says the same; here for --skip-schema-validation. */}}
{{- range $field := list "serviceAccountTokenAudience" "cacheType" "requireServiceAccount" }}
{{- if not (hasKey $ta $field) }}
{{- fail (printf "%s.%s is required with %s (the kubelet refuses the config without it)" $at $field $at) }}
{{- end }}
{{- end }}
{{- range $field, $_ := $ta }}
{{- if not (has $field (list "serviceAccountTokenAudience" "cacheType" "requireServiceAccount" "requiredServiceAccountAnnotationKeys" "optionalServiceAccountAnnotationKeys")) }}
{{- fail (printf "%s.%s: the kubelet knows no such field (it decodes strictly)" $at $field) }}
{{- end }}
{{- end }}
{{- if not (and (kindIs "string" $ta.serviceAccountTokenAudience) $ta.serviceAccountTokenAudience) }}
{{- fail (printf "%s.serviceAccountTokenAudience must be a non-empty string: the audience the registry's token endpoint expects (e.g. sts.amazonaws.com)" $at) }}
{{- end }}
{{- if not (has $ta.cacheType (list "Token" "ServiceAccount")) }}
{{- fail (printf "%s.cacheType must be Token or ServiceAccount, not %v" $at $ta.cacheType) }}
{{- end }}
{{- if not (kindIs "bool" $ta.requireServiceAccount) }}
{{- fail (printf "%s.requireServiceAccount must be true or false, not %v" $at $ta.requireServiceAccount) }}
{{- end }}
{{- $requireSA := $ta.requireServiceAccount }}
{{- $served := include "regcreds.kubeletPlugin.served" . | fromJsonArray }}
{{- $p := .Values.providers }}
{{- /* A pod without a ServiceAccount (a static pod) comes without a token: quay and ACR workload identity then
       have nothing to mint with, and regcreds refuses its whole configuration for that request. */}}
{{- if not $requireSA }}
{{- range $name := $served }}
{{- if or (eq $name "quay") (and (eq $name "acr") (eq $p.acr.auth "workload-identity")) }}
{{- fail (printf "%s.requireServiceAccount=false, but the plugin serves providers.%s, which has no token of its own in plugin mode: a pull without a ServiceAccount (a static pod) would fail for every served registry. Set it to true" $at $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $literals := dict }}
{{- range .Values.kubeletPlugin.env }}
{{- if hasKey . "value" }}{{ $_ := set $literals .name (toString .value) }}{{ else }}{{ $_ := set $literals .name "" }}{{ end }}
{{- end }}
{{- $needed := list }}
{{- $extra := list }}
{{- $fromEnv := dict }}
{{- range $name := $served }}
{{- if eq $name "ecr" }}
{{- $key := "eks.amazonaws.com/role-arn" }}
{{- if hasKey $literals "REGCREDS_ECR_ROLE_ANNOTATION" }}{{ $key = get $literals "REGCREDS_ECR_ROLE_ANNOTATION" }}{{ $_ := set $fromEnv "REGCREDS_ECR_ROLE_ANNOTATION" $key }}{{ end }}
{{- $needed = append $needed $key }}
{{- else if and (eq $name "acr") (ne $p.acr.auth "static") }}
{{- $needed = append $needed "azure.workload.identity/client-id" }}
{{- if or $p.acr.tenantId (eq $p.acr.auth "client-secret") }}
{{- $extra = append $extra "azure.workload.identity/tenant-id" }}
{{- else }}
{{- $needed = append $needed "azure.workload.identity/tenant-id" }}
{{- end }}
{{- else if and (eq $name "gcr") (hasKey $literals "REGCREDS_GCR_WORKLOAD_IDENTITY_PROVIDER") }}
{{- $extra = append $extra "iam.gke.io/gcp-service-account" }}
{{- else if and (eq $name "quay") (hasKey $literals "REGCREDS_QUAY_ROBOT_ANNOTATION") }}
{{- $key := get $literals "REGCREDS_QUAY_ROBOT_ANNOTATION" }}
{{- $_ := set $fromEnv "REGCREDS_QUAY_ROBOT_ANNOTATION" $key }}
{{- $extra = append $extra $key }}
{{- end }}
{{- end }}
{{- $givenRequired := hasKey $ta "requiredServiceAccountAnnotationKeys" }}
{{- $givenOptional := hasKey $ta "optionalServiceAccountAnnotationKeys" }}
{{- if not (and $givenRequired $givenOptional) }}
{{- range $var, $key := $fromEnv }}
{{- if not $key }}
{{- fail (printf "kubeletPlugin.env sets %s from a Secret or empty: the chart cannot derive the annotation key the kubelet must pass; give it literally, or list %s.requiredServiceAccountAnnotationKeys and optionalServiceAccountAnnotationKeys yourself" $var $at) }}
{{- end }}
{{- with include "regcreds.kubeletPlugin.annotationKeyProblem" $key }}
{{- fail (printf "kubeletPlugin.env %s=%q is not an annotation key the kubelet accepts: %s" $var $key .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $derivedRequired := list }}
{{- $derivedOptional := $extra }}
{{- if and $requireSA (eq (len $served) 1) }}
{{- $derivedRequired = $needed }}
{{- else }}
{{- $derivedOptional = concat $needed $extra }}
{{- end }}
{{- $required := list }}
{{- $optional := list }}
{{- if $givenRequired }}{{ $required = default (list) (get $ta "requiredServiceAccountAnnotationKeys") }}{{ end }}
{{- if $givenOptional }}{{ $optional = default (list) (get $ta "optionalServiceAccountAnnotationKeys") }}{{ end }}
{{- if not $givenRequired }}
{{- $required = list }}
{{- range uniq $derivedRequired }}{{ if not (has . $optional) }}{{ $required = append $required . }}{{ end }}{{ end }}
{{- end }}
{{- if not $givenOptional }}
{{- /* Also the keys a given required list leaves out: regcreds reads them, so the kubelet must pass them. */}}
{{- range uniq (concat $derivedRequired $derivedOptional) }}{{ if not (has . $required) }}{{ $optional = append $optional . }}{{ end }}{{ end }}
{{- end }}
{{- range $list, $keys := dict "requiredServiceAccountAnnotationKeys" $required "optionalServiceAccountAnnotationKeys" $optional }}
{{- if not (kindIs "slice" $keys) }}
{{- fail (printf "%s.%s must be a list of annotation keys" $at $list) }}
{{- end }}
{{- range $key := $keys }}
{{- if not (kindIs "string" $key) }}
{{- fail (printf "%s.%s: %v is not a string" $at $list $key) }}
{{- end }}
{{- with include "regcreds.kubeletPlugin.annotationKeyProblem" $key }}
{{- fail (printf "%s.%s: %q is not an annotation key the kubelet accepts: %s" $at $list $key .) }}
{{- end }}
{{- end }}
{{- if ne (len $keys) (len (uniq $keys)) }}
{{- fail (printf "%s.%s lists a key twice: %s (the kubelet refuses duplicates)" $at $list (toJson $keys)) }}
{{- end }}
{{- end }}
{{- if and (not $requireSA) $required }}
{{- fail (printf "%s.requiredServiceAccountAnnotationKeys %s needs requireServiceAccount=true: the kubelet refuses required annotation keys when it may call the plugin for a pod without a ServiceAccount (list them in optionalServiceAccountAnnotationKeys instead)" $at (toJson $required)) }}
{{- end }}
{{- $both := list }}
{{- range $required }}{{ if has . $optional }}{{ $both = append $both . }}{{ end }}{{ end }}
{{- if $both }}
{{- fail (printf "%s: %s in both requiredServiceAccountAnnotationKeys and optionalServiceAccountAnnotationKeys: the kubelet refuses a key that is both required and optional" $at (toJson $both)) }}
{{- end }}
{{- $out := dict "serviceAccountTokenAudience" $ta.serviceAccountTokenAudience "cacheType" $ta.cacheType "requireServiceAccount" $requireSA }}
{{- with $required }}{{ $_ := set $out "requiredServiceAccountAnnotationKeys" . }}{{ end }}
{{- with $optional }}{{ $_ := set $out "optionalServiceAccountAnnotationKeys" . }}{{ end }}
{{- toJson $out }}
{{- else }}{}
{{- end }}
{{- end }}

{{/* The security context of the plugin DaemonSet's containers that touch nothing on the host. */}}
{{- define "regcreds.kubeletPlugin.nonRootContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}
