#!/bin/bash
# Integration tests of the `oxwsgi` launcher (serve / config / doctor) with the real
# apache2 and nginx. Needs the launcher and the modules built (make modules launcher).
#
#   tests/run-launcher.sh                 # every test
#   tests/run-launcher.sh -k nginx        # extra arguments go to pytest
#
# Environment: OXWSGI_BIN (default target/release/oxwsgi), OXWSGI_MODULE_DIR (default
# target/modules; a missing module fails its tests), OXWSGI_TEST_VENV
# (default /opt/oxwsgi-test-venv). Run as root to cover the www-data checks.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export OXWSGI_TEST_VENV="${OXWSGI_TEST_VENV:-/opt/oxwsgi-test-venv}"
export OXWSGI_MODULE_DIR="${OXWSGI_MODULE_DIR:-$root/target/modules}"
export OXWSGI_BIN="${OXWSGI_BIN:-$root/target/release/oxwsgi}"

"$here/setup-venv.sh"

cd "$root"
exec env PYTHONDONTWRITEBYTECODE=1 "$OXWSGI_TEST_VENV/bin/python" -m pytest tests/launcher \
    -q -rA --tb=short -p no:cacheprovider "$@"
