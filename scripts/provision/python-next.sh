#!/usr/bin/env bash
# .venv-next for `make test-next`: the newest hub releases (requirements-next.txt) with the same
# test tools as .venv (requirements-dev.txt without its hub pins) and hub-config installed
# editable. A stamp of the requirement files' hash makes a second run a no-op.
. "$(dirname "$0")/../lib.sh"
venv="$REPO_ROOT/.venv-next"
stamp="$venv/.requirements.sha"
want=$(cat "$REPO_ROOT/requirements-next.txt" "$REPO_ROOT/requirements-dev.txt" "$REPO_ROOT/hub-config/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then ok "python environment .venv-next up to date"; exit 0; fi
need python3 "python environment (next)" "install Python 3.11+"
step "installing the next hub's Python environment into .venv-next (requirements-next.txt)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" || die "step 'python environment (next)': python3 -m venv failed (apt-get install python3-venv)"
"$venv/bin/pip" install -q --upgrade pip >/dev/null
log="$venv/pip-install.log"
tools="$venv/requirements-tools.txt"
# requirements-dev.txt pins the current hub through `-r requirements-hub.txt`; drop that line only.
grep -v -E '^-r +requirements-hub\.txt' "$REPO_ROOT/requirements-dev.txt" > "$tools"
"$venv/bin/pip" install -q -r "$REPO_ROOT/requirements-next.txt" -r "$tools" -e "$REPO_ROOT/hub-config" >"$log" 2>&1 \
  || die "step 'python environment (next)': pip install failed (see $log)"
"$venv/bin/pip" check >>"$log" 2>&1 || die "step 'python environment (next)': pip check found conflicts (see $log)"
echo "$want" > "$stamp"
ok "python environment ready in .venv-next"
