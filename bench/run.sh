#!/bin/sh
# The oxwsgi benchmark in one command (bench/README.md): installs what it needs, then runs
# every contender in turn on 127.0.0.1:18401-18412 (TLS: port + 20; --baseline: 18450-18472).
# Options: bench/run.sh --help.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
"$here/setup.sh"
exec "${OXWSGI_BENCH_VENV:-/opt/oxwsgi-bench-venv}/bin/python" "$here/bench.py" "$@"
