{{- /*
Names and labels shared by every template.

Object names stay as short as zero-to-jupyterhub's (hub, proxy-api, proxy-public) so the hub's
generated settings, NOTES and an operator's muscle memory agree; fullnameOverride prefixes them all
when two releases must share a namespace.
*/}}

{{- define "primehub.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "primehub.prefix" -}}
{{- with .Values.fullnameOverride }}{{ . | trunc 40 | trimSuffix "-" }}-{{ end -}}
{{- end }}

{{- define "primehub.hub.fullname" -}}{{ include "primehub.prefix" . }}hub{{- end }}
{{- define "primehub.hub.configName" -}}{{ include "primehub.prefix" . }}hub-config{{- end }}
{{- define "primehub.hub.extraConfigName" -}}{{ include "primehub.prefix" . }}hub-extra-config{{- end }}
{{- define "primehub.hub.extraFilesName" -}}{{ include "primehub.prefix" . }}hub-extra-files{{- end }}
{{- define "primehub.hub.dbPvcName" -}}{{ include "primehub.prefix" . }}hub-db-dir{{- end }}
{{- define "primehub.proxy.fullname" -}}{{ include "primehub.prefix" . }}proxy{{- end }}
{{- define "primehub.proxy.apiName" -}}{{ include "primehub.prefix" . }}proxy-api{{- end }}
{{- define "primehub.proxy.publicName" -}}{{ include "primehub.prefix" . }}proxy-public{{- end }}
{{- define "primehub.gitSync.fullname" -}}{{ include "primehub.prefix" . }}git-sync{{- end }}
{{- define "primehub.singleuser.fullname" -}}{{ include "primehub.prefix" . }}singleuser{{- end }}

{{- /* PriorityClasses are cluster-scoped: the namespace keeps two releases of the same name apart. */}}
{{- define "primehub.priorityClassName" -}}
{{- printf "%s-%s-default-priority" .Release.Name .Release.Namespace | trunc 253 -}}
{{- end }}

{{- define "primehub.hub.serviceAccountName" -}}
{{- if .Values.hub.serviceAccount.create -}}
{{- .Values.hub.serviceAccount.name | default (include "primehub.hub.fullname" .) -}}
{{- else -}}
{{- .Values.hub.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end }}

{{- /* The Secret holding the cookie secret, the auth-state key, the proxy token and the db password. */}}
{{- define "primehub.hub.secretName" -}}
{{- .Values.hub.existingSecret | default (include "primehub.hub.fullname" .) -}}
{{- end }}

{{- define "primehub.keycloak.secretName" -}}
{{- .Values.keycloak.existingSecret | default (printf "%shub-keycloak" (include "primehub.prefix" .)) -}}
{{- end }}

{{- define "primehub.keycloak.secretKey" -}}
{{- if .Values.keycloak.existingSecret -}}{{ .Values.keycloak.existingSecretKey }}{{- else -}}client-secret{{- end -}}
{{- end }}

{{- /* Labels: call with (dict "root" $ "component" "hub"). */}}
{{- define "primehub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "primehub.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "primehub.labels" -}}
{{ include "primehub.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- /*
KubeSpawner labels user pods with component=singleuser-server; the chart adds the release so that
the single-user NetworkPolicy of one release never selects another release's pods.
*/}}
{{- define "primehub.singleuser.selectorLabels" -}}
app.kubernetes.io/component: singleuser-server
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "primehub.image" -}}
{{- .name }}:{{ .tag }}
{{- end }}

{{- /* Pull secrets: the global list plus the image's own; call with (dict "root" $ "image" .Values.hub.image). */}}
{{- define "primehub.imagePullSecrets" -}}
{{- $names := concat (.root.Values.imagePullSecrets | default list) (.image.pullSecrets | default list) | uniq -}}
{{- range $names }}
- name: {{ . }}
{{- end }}
{{- end }}

{{- /*
extraEnv in the z2jh forms: a map of NAME -> string, or NAME -> EnvVar fields (valueFrom...),
or a plain list of EnvVar objects.
*/}}
{{- define "primehub.extraEnv" -}}
{{- if kindIs "map" . }}
{{- range $name, $value := . }}
{{- if kindIs "map" $value }}
- name: {{ $name }}
  {{- omit $value "name" | toYaml | nindent 2 }}
{{- else }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- else if kindIs "slice" . }}
{{- range . }}
- {{ toYaml . | nindent 2 | trim }}
{{- end }}
{{- end }}
{{- end }}

{{- /* The Keycloak address the hub uses; the browser-facing one when no internal one is given. */}}
{{- define "primehub.keycloak.internalUrl" -}}
{{- .Values.keycloak.internalUrl | default .Values.keycloak.url | trimSuffix "/" -}}
{{- end }}

{{- /* The TCP port of a URL, for NetworkPolicies that cannot name a host. */}}
{{- define "primehub.urlPort" -}}
{{- $u := urlParse . -}}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" -}}
{{- if $port }}{{ $port }}{{ else if eq $u.scheme "https" }}443{{ else }}80{{ end -}}
{{- end }}

{{- /*
The hub's public address. Keycloak must redirect browsers back to it, so an explicit value wins;
else the first ingress host is the only address the chart can know.
*/}}
{{- define "primehub.publicUrl" -}}
{{- if .Values.primehub.publicUrl -}}
{{- .Values.primehub.publicUrl | trimSuffix "/" -}}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts -}}
{{- $host := first .Values.ingress.hosts -}}
{{- $tls := false -}}
{{- range .Values.ingress.tls }}{{ if has $host (.hosts | default list) }}{{ $tls = true }}{{ end }}{{ end -}}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host -}}
{{- end -}}
{{- end }}

{{- /* The path the hub is served under, always with one leading and one trailing slash. */}}
{{- define "primehub.baseUrl" -}}
{{- $b := .Values.hub.baseUrl | default "/" | trimAll "/" -}}
{{- if $b }}/{{ $b }}/{{ else }}/{{ end -}}
{{- end }}
