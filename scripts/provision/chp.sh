#!/usr/bin/env bash
# configurable-http-proxy from npm, installed into the cache (not globally).
. "$(dirname "$0")/../lib.sh"
out="$CACHE_DIR/chp/$CHP_VERSION"
if [ -x "$out/node_modules/.bin/configurable-http-proxy" ]; then ok "configurable-http-proxy $CHP_VERSION cached"; exit 0; fi
need npm "install configurable-http-proxy" "install Node.js 20 and npm"
step "installing configurable-http-proxy $CHP_VERSION from npm"
mkdir -p "$out"
npm install --silent --no-audit --no-fund --prefix "$out" "configurable-http-proxy@$CHP_VERSION" >/dev/null \
  || die "step 'install configurable-http-proxy': npm install failed"
ok "configurable-http-proxy $CHP_VERSION installed into $out"
