{{- /*
Egress rules from the z2jh-style egressAllowRules switches. A NetworkPolicy cannot name a host, so
"the internet" is every address outside the RFC 1918 ranges, and the cloud metadata server
(169.254.169.254, which hands out node credentials on most clouds) is cut out of it unless allowed.
Call with the egressAllowRules map.
*/}}
{{- define "primehub.netpol.egressAllowRules" -}}
{{- $private := list "10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" -}}
{{- if .nonPrivateIPs }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          {{- range $private }}
          - {{ . }}
          {{- end }}
          {{- if not .cloudMetadataServer }}
          - 169.254.169.254/32
          {{- end }}
{{- end }}
{{- if .privateIPs }}
- to:
    {{- range $private }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
{{- end }}
{{- if .cloudMetadataServer }}
- to:
    - ipBlock:
        cidr: 169.254.169.254/32
{{- end }}
{{- if or .dnsPortsKubeSystemNamespace .dnsPortsPrivateIPs .dnsPortsCloudMetadataServer }}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  to:
    {{- if .dnsPortsKubeSystemNamespace }}
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
    {{- end }}
    {{- if .dnsPortsPrivateIPs }}
    {{- range $private }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
    {{- end }}
    {{- if .dnsPortsCloudMetadataServer }}
    - ipBlock:
        cidr: 169.254.169.254/32
    {{- end }}
{{- end }}
{{- end }}

{{- /*
Egress to Keycloak: its port, to keycloak.networkPolicyPeers when the operator knows where Keycloak
runs. Both the internal and the browser-facing address count, since the hub may be told to use either.
Without peers only public addresses qualify: a rule without `to:` would open the port to every
address, the cluster's own services and the cloud metadata server (169.254.169.254, plain http on 80)
included. An in-cluster Keycloak therefore needs networkPolicyPeers.
*/}}
{{- define "primehub.netpol.keycloakEgress" -}}
{{- if .Values.keycloak.url }}
{{- $ports := list (include "primehub.urlPort" (include "primehub.keycloak.internalUrl" .)) (include "primehub.urlPort" .Values.keycloak.url) | uniq }}
- ports:
    {{- range $ports }}
    - protocol: TCP
      port: {{ . | int }}
    {{- end }}
  to:
  {{- with .Values.keycloak.networkPolicyPeers }}
    {{- toYaml . | nindent 4 }}
  {{- else }}
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          - 10.0.0.0/8
          - 172.16.0.0/12
          - 192.168.0.0/16
          - 169.254.0.0/16
  {{- end }}
{{- end }}
{{- end }}
