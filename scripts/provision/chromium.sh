#!/usr/bin/env bash
# Debian's chromium for the browser tests (Playwright drives it; no browser download).
. "$(dirname "$0")/../lib.sh"
if [ -x /usr/bin/chromium ]; then ok "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"; exit 0; fi
need apt-get "install chromium" "a Debian-based machine, or install chromium yourself at /usr/bin/chromium"
step "installing Debian's chromium with apt-get"
if [ "$(id -u)" != 0 ]; then SUDO=sudo; need sudo "install chromium"; else SUDO=; fi
$SUDO apt-get update -qq >/dev/null || die "step 'install chromium': apt-get update failed"
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null || die "step 'install chromium': apt-get install chromium failed"
ok "chromium installed"
