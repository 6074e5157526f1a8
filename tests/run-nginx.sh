#!/bin/bash
# nginx-only tests (nginx -t errors, event loop never blocked, reloads, in-flight cap).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup-venv.sh"
venv="${OXWSGI_TEST_VENV:-/opt/oxwsgi-test-venv}"
cd "$here/.."
exec env PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest tests/nginx -p no:cacheprovider -rA -q "$@"
