#!/bin/sh
# Install what bench/run.sh needs: Debian packages (wrk, uWSGI, mod_wsgi, apache2, nginx)
# through scripts/deps.sh --bench, and a venv from Debian's CPython 3.11 with gunicorn,
# Granian and matplotlib. Idempotent; the venv sits where www-data can read it.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
VENV=${OXWSGI_BENCH_VENV:-/opt/oxwsgi-bench-venv}

"$here/../scripts/deps.sh" --bench
if [ ! -x "$VENV/bin/python" ]; then
    echo "bench: creating $VENV"
    /usr/bin/python3.11 -m venv "$VENV"
fi
if ! "$VENV/bin/python" - "$here/requirements.txt" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        assert version(name) == want, name
PY
then
    echo "bench: installing $here/requirements.txt into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
chmod -R a+rX "$VENV"
