#!/usr/bin/env bash
# The repository's .venv with the pinned Python dependencies and hub-config installed editable.
# A stamp of the requirement files' hash makes a second run a no-op.
. "$(dirname "$0")/../lib.sh"
venv="$REPO_ROOT/.venv"
stamp="$venv/.requirements.sha"
want=$(cat "$REPO_ROOT"/requirements-*.txt "$REPO_ROOT/hub-config/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then ok "python environment .venv up to date"; exit 0; fi
need python3 "python environment" "install Python 3.11+"
step "installing the Python environment into .venv (pinned requirements)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "step 'python environment': python3 -m venv failed (apt-get install python3-venv)"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
log="$venv/pip-install.log"
"$venv/bin/pip" install -q -r "$REPO_ROOT/requirements-dev.txt" >"$log" 2>&1 || die "step 'python environment': pip install -r requirements-dev.txt failed (see $log)"
if [ -f "$REPO_ROOT/hub-config/pyproject.toml" ]; then
  "$venv/bin/pip" install -q -e "$REPO_ROOT/hub-config" >>"$log" 2>&1 || die "step 'python environment': pip install -e hub-config failed (see $log)"
fi
echo "$want" > "$stamp"
ok "python environment ready in .venv"
