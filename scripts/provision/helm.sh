#!/usr/bin/env bash
# Build helm 3 from the Go module helm.sh/helm/v3.
. "$(dirname "$0")/../lib.sh"
out="$CACHE_DIR/helm/$HELM_VERSION"
if [ -x "$out/helm" ]; then ok "helm $HELM_VERSION cached in $out"; exit 0; fi
need go "build helm" "install Go 1.24 or newer"
step "building helm $HELM_VERSION from helm.sh/helm/v3 (about 3 minutes)"
mod="$CACHE_DIR/helm/build-$HELM_VERSION"
mkdir -p "$mod" "$out"; cd "$mod"
[ -f go.mod ] || go mod init primehub.local/helmbuild >/dev/null 2>&1
cat > tools.go <<'GO'
//go:build tools

package helmbuild

import _ "helm.sh/helm/v3/cmd/helm"
GO
GOFLAGS=-mod=mod go get "helm.sh/helm/v3@$HELM_VERSION" >/dev/null 2>&1 || die "step 'build helm': the Go module proxy did not serve helm.sh/helm/v3@$HELM_VERSION"
GOFLAGS=-mod=mod go mod tidy >"$mod/tidy.log" 2>&1 || die "step 'build helm': go mod tidy failed (see $mod/tidy.log)"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm
mv "$out/helm.tmp" "$out/helm"
ok "helm $HELM_VERSION built into $out"
