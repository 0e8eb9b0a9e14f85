#!/usr/bin/env bash
# What the kind backend needs besides the local stack's tools, built from Go modules into the cache:
# kind itself, the node's kubelet/kubeadm/kube-proxy (same build module and flags as the control
# plane, see k8s.sh), crictl, CoreDNS, the NetworkPolicy enforcer, the local-path provisioner and a
# tiny pause program. Then Debian's docker.io when no Docker engine answers. Idempotent.
. "$(dirname "$0")/../lib.sh"
here="$(dirname "$0")"

bash "$here/k8s.sh" node

# go_tool NAME PACKAGE@VERSION OUT_DIR: `go install` one main package into the cache, once.
go_tool() {
  local name=$1 pkg=$2 out=$3
  if [ -x "$out/$name" ]; then ok "$name cached in $out"; return; fi
  need go "build $name" "install Go 1.24 or newer"
  step "go install $pkg"
  local tmp; tmp=$(mktemp -d)
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "$pkg" \
    || die "step 'build $name': go install $pkg failed"
  mkdir -p "$out"
  mv "$tmp"/* "$out/$name"
  rm -rf "$tmp"
}

go_tool kind "sigs.k8s.io/kind@$KIND_VERSION" "$CACHE_DIR/kind/$KIND_VERSION"
go_tool crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" "$CACHE_DIR/crictl/$CRICTL_VERSION"
go_tool coredns "github.com/coredns/coredns@$COREDNS_VERSION" "$CACHE_DIR/coredns/$COREDNS_VERSION"
go_tool kube-router "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" \
  "$CACHE_DIR/kube-router/$KUBE_ROUTER_VERSION"
go_tool local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" \
  "$CACHE_DIR/local-path-provisioner/$LOCAL_PATH_VERSION"

pause_src="$REPO_ROOT/images/pause"
pause_out="$CACHE_DIR/pause/$(cat "$pause_src"/*.go "$pause_src/go.mod" | sha256sum | cut -c1-12)"
if [ -x "$pause_out/pause" ]; then ok "pause cached in $pause_out"; else
  step "go build pause"
  mkdir -p "$pause_out"
  (cd "$pause_src" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$pause_out/pause" .) \
    || die "step 'build pause' failed"
fi

# The Docker engine: a running one is used as it is; otherwise Debian's package provides dockerd,
# which the stack starts with its own data root (scripts/localstack/dockerd.py).
if docker version >/dev/null 2>&1 || [ -n "${DOCKER_HOST:-}" ]; then
  ok "a Docker engine answers"
elif [ -x /usr/sbin/dockerd ] && command -v debootstrap >/dev/null; then
  ok "docker.io and debootstrap installed"
else
  step "installing Debian's docker.io and debootstrap"
  [ "$(id -u)" = 0 ] || die "step 'docker engine': installing docker.io needs root (or start Docker and set DOCKER_HOST)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >/dev/null; } \
    || die "step 'docker engine': apt-get install docker.io debootstrap failed"
fi
ok "kind backend tools ready"
