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
The hub's settings document (hub-config/primehub_hub/settings.py reads it; the local stack writes
the same document). Everything the hub is told comes from here, except secrets, which stay in
secretKeyRef environment variables. It sits in a Secret, not a ConfigMap, because
singleuser.extraEnv and hub.config may carry credentials.
*/}}
{{- define "primehub.hub.settings" -}}
{{- $v := .Values -}}
{{- $dbUrl := $v.hub.db.url -}}
{{- if eq $v.hub.db.type "sqlite-pvc" }}{{ $dbUrl = "sqlite:////srv/jupyterhub/jupyterhub.sqlite" }}{{ end -}}
{{- if eq $v.hub.db.type "sqlite-memory" }}{{ $dbUrl = "sqlite://" }}{{ end -}}
{{- $commonLabels := dict "app.kubernetes.io/instance" .Release.Name "hub.jupyter.org/network-access-hub" "true" -}}
{{- $settings := dict
  "keycloak" (dict
    "url" ($v.keycloak.url | trimSuffix "/")
    "internalUrl" (include "primehub.keycloak.internalUrl" .)
    "realm" $v.keycloak.realm
    "clientId" $v.keycloak.clientId
    "rolePrefix" $v.keycloak.rolePrefix
    "scopeRequired" $v.keycloak.scopeRequired
    "logout" $v.keycloak.logout)
  "publicUrl" (include "primehub.publicUrl" .)
  "namespace" .Release.Namespace
  "extraConfigDir" "."
  "hub" (dict
    "baseUrl" (include "primehub.baseUrl" .)
    "hubBindUrl" "http://:8081"
    "connectUrl" (printf "http://%s:8081" (include "primehub.hub.fullname" .))
    "dbUrl" $dbUrl
    "concurrentSpawnLimit" $v.hub.concurrentSpawnLimit
    "activeServerLimit" $v.hub.activeServerLimit
    "debug" $v.debug.enabled)
  "proxy" (dict
    "apiUrl" (printf "http://%s:8001" (include "primehub.proxy.apiName" .)))
  "singleuser" (dict
    "cmd" (ternary (list $v.singleuser.cmd) $v.singleuser.cmd (kindIs "string" $v.singleuser.cmd))
    "defaultUrl" $v.singleuser.defaultUrl
    "startTimeout" $v.singleuser.startTimeout
    "kernelCullTimeout" $v.primehub.kernelCullTimeout
    "uid" $v.singleuser.uid
    "fsGid" $v.singleuser.fsGid
    "allowPrivilegeEscalation" $v.singleuser.allowPrivilegeEscalation
    "podSecurityContext" ($v.singleuser.podSecurityContext | default dict)
    "containerSecurityContext" ($v.singleuser.containerSecurityContext | default dict)
    "commonLabels" $commonLabels
    "extraLabels" $v.singleuser.extraLabels
    "extraEnv" $v.singleuser.extraEnv
    "priorityClassName" (ternary (include "primehub.priorityClassName" .) "" $v.scheduling.podPriority.enabled)
    "storage" (dict
      "homeVolume" (eq $v.singleuser.storage.type "dynamic")
      "capacity" $v.singleuser.storage.capacity
      "homeMountPath" $v.singleuser.storage.homeMountPath
      "storageClass" $v.singleuser.storage.dynamic.storageClass
      "homePvcNaming" $v.primehub.homePvcNaming
      "extraVolumes" $v.singleuser.storage.extraVolumes
      "extraVolumeMounts" $v.singleuser.storage.extraVolumeMounts))
  "primehub" (dict
    "schedulingFailureGrace" $v.primehub.schedulingFailureGrace
    "mountFailureGrace" $v.primehub.mountFailureGrace
    "imagePullFailureGrace" $v.primehub.imagePullFailureGrace
    "sharedVolumeStorageClass" $v.primehub.sharedVolume.storageClass
    "sharedVolumeAccessModes" $v.primehub.sharedVolume.accessModes
    "gitSyncHostRoot" $v.primehub.gitSyncHostRoot
    "gitSyncOnNodes" (or $v.gitSync.enabled $v.gitSync.external)
    "shmSize" $v.primehub.shmSize
    "grantSudo" $v.primehub.grantSudo
    "startWrapper" $v.primehub.startWrapper
    "startScriptsConfigMap" $v.primehub.startScriptsConfigMap
    "datasetHostPaths" ($v.primehub.datasetHostPaths | default list))
  "cull" $v.cull
  "config" $v.hub.config
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
