#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the Go module
# k8s.io/kubernetes (`k8s.sh node` adds kubelet, kubeadm and kube-proxy for the kind node image).
# Its go.mod names the k8s.io staging modules at v0.0.0 with replace lines to
# ./staging, which only work inside the kubernetes repo; our small build module replaces each
# staging module with its published v0.X.Y release instead.
. "$(dirname "$0")/../lib.sh"

out="$CACHE_DIR/k8s/$K8S_VERSION"
bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
[ "${1:-}" = node ] && bins+=(kubelet kubeadm kube-proxy)
have=1; for b in "${bins[@]}"; do [ -x "$out/$b" ] || have=0; done
if [ $have = 1 ]; then ok "kubernetes $K8S_VERSION cached in $out (${bins[*]})"; exit 0; fi

need go "build kubernetes" "install Go 1.24 or newer"
step "building kubernetes $K8S_VERSION (${bins[*]}); a first build takes 10-30 minutes"
mod="$CACHE_DIR/k8s/build-$K8S_VERSION"
mkdir -p "$mod" "$out"
cd "$mod"
staging_v="v0.${K8S_VERSION#v1.}"
# Read the upstream go.mod to find every staging module it replaces.
upstream_mod=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$upstream_mod" ] || die "step 'build kubernetes': could not download k8s.io/kubernetes@$K8S_VERSION from the Go module proxy"
go_line=$(grep -m1 '^go ' "$upstream_mod")
{
  echo "module primehub.local/k8sbuild"
  echo
  echo "$go_line"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" \
    | awk -v v="$staging_v" '{print "replace " $1 " => " $1 " " v}'
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
for b in "${bins[@]}"; do
  [ -x "$out/$b" ] && continue
  step "go build $b"
  CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION" \
    -o "$out/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$out/$b.tmp" "$out/$b"
done
ok "kubernetes $K8S_VERSION built into $out"
