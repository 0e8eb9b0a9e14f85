#!/usr/bin/env bash
# Everything the local stack needs, each step idempotent and cached by version.
. "$(dirname "$0")/../lib.sh"
here="$(dirname "$0")"
step "cache folder: $CACHE_DIR"
bash "$here/python.sh"
bash "$here/k8s.sh"
bash "$here/etcd.sh"
bash "$here/helm.sh"
bash "$here/keycloak.sh"
bash "$here/chp.sh"
bash "$here/chromium.sh"
step "all tools ready ($(du -sh "$CACHE_DIR" 2>/dev/null | cut -f1) in $CACHE_DIR)"
