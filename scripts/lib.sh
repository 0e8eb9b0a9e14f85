# Shared shell helpers for the provisioning and stack scripts. Source it; do not run it.
# One cache folder holds every downloaded or built tool, keyed by version, so a
# second run finds everything and builds nothing.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${PRIMEHUB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/primehub-local}"
STATE_DIR="${PRIMEHUB_STATE:-$REPO_ROOT/.local-stack}"
# Versions live in one file so the chart, the scripts and the README agree.
# shellcheck source=versions.env
. "$REPO_ROOT/scripts/versions.env"

step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
ok()   { printf '    ok: %s\n' "$*" >&2; }
die()  { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# need TOOL STEP: fail with a message that names the step and the missing tool.
need() {
  command -v "$1" >/dev/null 2>&1 || die "step '$2' needs '$1', which is not on PATH${3:+ ($3)}"
}
