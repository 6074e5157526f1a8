#!/bin/sh
# Install what bench/run.sh needs: Debian packages (wrk, h2load, uWSGI, mod_wsgi, apache2,
# nginx, libev-dev and gcc for bjoern) through scripts/deps.sh --bench, and a venv from
# Debian's CPython 3.11 with bench/requirements.txt (gunicorn, Granian, bjoern, pyruvate,
# Flask, Django, matplotlib). Idempotent; the venv sits where www-data can read it.
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
    failed="$VENV/bench-install-failed"
    rm -rf "$failed"
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"; then
        # One package at a time: one that cannot be installed here takes only its own
        # contender out (bench/contenders.py reports the last error line of its log).
        mkdir -p "$failed"
        grep -v '^ *#' "$here/requirements.txt" | grep . | while read -r req; do
            name=${req%%==*}
            if ! "$VENV/bin/pip" install -q --disable-pip-version-check "$req" \
                    >"$failed/$name.log" 2>&1; then
                echo "bench: pip install $req failed (log: $failed/$name.log)" >&2
            else
                rm -f "$failed/$name.log"
            fi
        done
    fi
fi
chmod -R a+rX "$VENV"
