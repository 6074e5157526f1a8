#!/bin/bash
# Run the WSGI conformance suite against real servers.
#
#   tests/run-conformance.sh                      # OXWSGI_SERVERS default: apache,nginx
#   OXWSGI_SERVERS=modwsgi tests/run-conformance.sh   # the mod_wsgi reference
#   OXWSGI_SERVERS=modwsgi-prefork,apache-worker tests/run-conformance.sh -k environ
#
# Extra arguments go to pytest. Must run as root (the servers bind, then drop
# to www-data). Environment: OXWSGI_SERVERS, OXWSGI_APACHE_MPM,
# OXWSGI_MODULE_DIR (default /work/main/target/modules), OXWSGI_TEST_VENV
# (default /opt/oxwsgi-test-venv), OXWSGI_KEEP_STAGE=1.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export OXWSGI_TEST_VENV="${OXWSGI_TEST_VENV:-/opt/oxwsgi-test-venv}"
export OXWSGI_MODULE_DIR="${OXWSGI_MODULE_DIR:-$(dirname "$here")/target/modules}"

"$here/setup-venv.sh"

cd "$(dirname "$here")"
# -rA: one line per case with its outcome; the plugin in
# tests/harness/pytest_plugin.py adds "server: N passed, M failed" lines.
exec env PYTHONDONTWRITEBYTECODE=1 "$OXWSGI_TEST_VENV/bin/python" -m pytest tests/conformance \
    -q -rA --tb=short -p no:cacheprovider "$@"
