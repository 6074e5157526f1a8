#!/bin/sh
# Instructions per request of oxwsgi's Apache content handler for a hello-world app,
# counted by callgrind (instruction counts do not depend on the machine's load).
#
#   bench/callgrind-apache.sh [MODULE_DIR] [REQUESTS]
#
# Runs Debian's apache2 in one process (-X, prefork) under valgrind with collection
# limited to oxwsgi_rs_handler (inclusive: everything the handler calls), warms up, zeroes
# the counters, sends REQUESTS requests and prints total/REQUESTS.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
MODDIR=${1:-$HERE/target/modules}
N=${2:-200}
PORT=${PORT:-18765}
. "$HERE/bench/callgrind-lib.sh"
new_stage oxwsgi-cg
cat > "$stage/hello.wsgi" <<'PY'
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello, World!"]
PY
chmod -R a+rX "$stage"
# Everything runs as www-data (-X would switch to it after valgrind opened its output as root).
chown -R www-data "$stage"
{ conf_head; cat <<CONF
WSGIScriptAlias /hello $stage/hello.wsgi
<Directory $stage>
    Require all granted
</Directory>
CONF
} > "$stage/httpd.conf"
# The handler's inclusive instruction count after `count` requests (the first ones load
# the script; two runs with different counts cancel that out).
run() {
    count=$1
    rm -f "$stage"/cg/cg.out* "$stage/logs/error.log" "$stage/run/httpd.pid"
    setpriv --reuid=www-data --regid=www-data --init-groups valgrind --tool=callgrind --toggle-collect=oxwsgi_rs_handler \
        --callgrind-out-file="$stage/cg/cg.out" /usr/sbin/apache2 -X -f "$stage/httpd.conf" \
        >"$stage/logs/valgrind.log" 2>&1 &
    vg=$!
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/hello" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 300 ] || { cat "$stage/logs/"*; exit 1; }; sleep 0.2
    done
    urls=$(for _ in $(seq $((count - 1))); do printf 'http://127.0.0.1:%s/hello ' "$PORT"; done)
    # shellcheck disable=SC2086
    curl -fsS $urls >/dev/null
    kill -TERM $vg
    wait $vg 2>/dev/null || true
    callgrind_annotate "$stage"/cg/cg.out* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}'
}
trap '[ -n "${KEEP:-}" ] || rm -rf "$stage"' EXIT
small=$(run 20)
large=$(run $((20 + N)))
echo "oxwsgi Apache handler: $(((large - small) / N)) instructions per hello request (callgrind, $N requests)"
