#!/bin/bash
# Apache-only tests (configuration errors, graceful restarts), after the shared suite.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$here/setup-venv.sh"
venv="${OXWSGI_TEST_VENV:-/opt/oxwsgi-test-venv}"
cd "$here/.."
exec "$venv/bin/python" -m pytest tests/apache -p no:cacheprovider -rA -q "$@"
