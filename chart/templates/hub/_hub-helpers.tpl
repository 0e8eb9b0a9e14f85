{{- /*
The repository's hub-config/ as ConfigMap entries. A ConfigMap key cannot hold "/", so a file at
primehub_hub/a/b.py is stored under primehub_hub__a__b.py and put back in place by the volume's items.
*/}}
{{- define "primehub.hub.packageFiles" -}}
{{- $files := dict -}}
{{- range $path, $_ := .Files.Glob "files/hub-config/primehub_hub/**" -}}
{{- $rel := trimPrefix "files/hub-config/" $path -}}
{{- $_ := set $files (replace "/" "__" $rel) $rel -}}
{{- end -}}
{{- toJson $files -}}
{{- end }}

{{- /*
Everything the hub needs from the values that has no PRIMEHUB_* variable of its own, as one JSON
document that files/chart_config.py applies to the JupyterHub config. It sits in a Secret, not a
ConfigMap, because singleuser.extraEnv may carry credentials.
*/}}
{{- define "primehub.hub.chartSettings" -}}
{{- $v := .Values -}}
{{- $dbUrl := $v.hub.db.url -}}
{{- if eq $v.hub.db.type "sqlite-pvc" }}{{ $dbUrl = "sqlite:////srv/jupyterhub/jupyterhub.sqlite" }}{{ end -}}
{{- if eq $v.hub.db.type "sqlite-memory" }}{{ $dbUrl = "sqlite://" }}{{ end -}}
{{- $commonLabels := dict "app.kubernetes.io/instance" .Release.Name "hub.jupyter.org/network-access-hub" "true" -}}
{{- $settings := dict
  "release" .Release.Name
  "hub" (dict
    "baseUrl" (include "primehub.baseUrl" .)
    "bindUrl" "http://:8081"
    "connectUrl" (printf "http://%s:8081" (include "primehub.hub.fullname" .))
    "dbUrl" $dbUrl
    "concurrentSpawnLimit" $v.hub.concurrentSpawnLimit
    "activeServerLimit" $v.hub.activeServerLimit
    "debug" $v.debug.enabled)
  "proxy" (dict
    "apiUrl" (printf "http://%s:8001" (include "primehub.proxy.apiName" .)))
  "singleuser" (dict
    "defaultUrl" $v.singleuser.defaultUrl
    "startTimeout" $v.singleuser.startTimeout
    "uid" $v.singleuser.uid
    "fsGid" $v.singleuser.fsGid
    "allowPrivilegeEscalation" $v.singleuser.allowPrivilegeEscalation
    "commonLabels" $commonLabels
    "extraLabels" $v.singleuser.extraLabels
    "extraEnv" $v.singleuser.extraEnv
    "homeMountPath" $v.singleuser.storage.homeMountPath
    "extraVolumes" $v.singleuser.storage.extraVolumes
    "extraVolumeMounts" $v.singleuser.storage.extraVolumeMounts
    "storageClass" $v.singleuser.storage.dynamic.storageClass
    "priorityClassName" (ternary (include "primehub.priorityClassName" .) "" $v.scheduling.podPriority.enabled))
  "primehub" (dict
    "schedulingFailureGrace" $v.primehub.schedulingFailureGrace
    "sharedVolumeStorageClass" $v.primehub.sharedVolume.storageClass
    "sharedVolumeAccessModes" $v.primehub.sharedVolume.accessModes
    "gitSyncHostRoot" $v.primehub.gitSyncHostRoot)
  "cull" $v.cull
-}}
{{- toPrettyJson $settings -}}
{{- end }}

{{- /*
A generated secret that survives upgrades: an explicit value wins, then the value already in the
release's Secret (so `helm upgrade` never logs users out or loses encrypted auth state), and only a
first install generates one. randAlphaNum draws from crypto/rand; its SHA-256 gives the 32 bytes in
hex that both JupyterHub's cookie secret and its CryptKeeper accept.
Call with (dict "root" $ "key" "cookie-secret" "value" .Values.hub.cookieSecret).
*/}}
{{- define "primehub.hub.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace (include "primehub.hub.secretName" .root) -}}
{{- if .value -}}
{{- .value -}}
{{- else if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 64 | sha256sum -}}
{{- end -}}
{{- end }}
