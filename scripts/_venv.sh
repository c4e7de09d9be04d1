# Sourced by scripts/serve and scripts/test: make .venv and install one lock file into it,
# with hashes required. Re-installs only when the lock file or pyproject changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${LICTOR_VENV:-$root/.venv}"
lock="$root/requirements/$1.lock"
if [ ! -x "$venv/bin/python" ]; then
  py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  "$py" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))' \
    || { echo "lictor needs Python 3.11 or newer ($py is older)" >&2; exit 1; }
  "$py" -m venv "$venv"
fi
stamp="$venv/.lictor-$1.sha256"
want="$(cat "$lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$lock"
  "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
