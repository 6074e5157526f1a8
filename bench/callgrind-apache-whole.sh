#!/bin/sh
# Whole-process instructions per request of Apache (apache2 -X: prefork, one process)
# under callgrind: bench/app.py's /hello through mod_oxwsgi against a 13-byte static file,
# in the same configuration (docs/profiles.md). Unlike bench/callgrind-apache.sh (the
# content handler alone) this counts everything httpd does for the request.
#
#   bench/callgrind-apache-whole.sh [MODULE_DIR]
#
# For each URL: two runs (50 and 450 requests on one keep-alive connection, after the same
# start-up), the difference divided by 400. Prints both and leaves the 450-request profiles
# (cg-<url>.out) in the stage it names, for callgrind_annotate.
set -eu
HERE=$(cd "$(dirname "$0")/.." && pwd)
MODDIR=${1:-$HERE/target/modules}
PORT=${PORT:-18767}
. "$HERE/bench/callgrind-lib.sh"
new_stage oxwsgi-cgw
mkdir -p "$stage/static"
printf 'Hello world!\n' > "$stage/static/file13.txt"
cp "$HERE/bench/app.py" "$stage/app.py"
chmod -R a+rX "$stage"; chown -R www-data "$stage"
{ conf_head; cat <<CONF
LoadModule mime_module $M/mod_mime.so
TypesConfig /etc/mime.types
WSGIApplicationGroup %{GLOBAL}
WSGIImportScript $stage/app.py application-group=%{GLOBAL}
WSGIScriptAlias /w $stage/app.py
DocumentRoot $stage/static
KeepAliveTimeout 30
MaxKeepAliveRequests 0
<Directory $stage>
    Require all granted
</Directory>
CONF
} > "$stage/httpd.conf"
run() {  # run PATH COUNT -> total instructions of the process
    rm -f "$stage"/cg/cg.out* "$stage/run/httpd.pid"
    setpriv --reuid=www-data --regid=www-data --init-groups valgrind --tool=callgrind \
        --callgrind-out-file="$stage/cg/cg.out" /usr/sbin/apache2 -X -f "$stage/httpd.conf" >"$stage/logs/valgrind.log" 2>&1 &
    vg=$!
    i=0
    until curl -fsS -o /dev/null "http://127.0.0.1:$PORT/w/hello" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 600 ] || { cat "$stage/logs/"*; kill $vg; exit 1; }; sleep 0.2
    done
    curl -fsS $(urls /file13.txt 1) > /dev/null
    curl -fsS $(urls $1 $2) > /dev/null      # one keep-alive connection
    kill -TERM $vg; wait $vg 2>/dev/null || true
    callgrind_annotate "$stage"/cg/cg.out* 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
}
urls() { for _ in $(seq "$2"); do printf 'http://127.0.0.1:%s%s ' "$PORT" "$1"; done; }
for path in /w/hello /file13.txt; do
    a=$(run $path 50); b=$(run $path 450)
    echo "$path: $a (50 requests) $b (450) per request $(( (b - a) / 400 ))"
    cp "$stage"/cg/cg.out* "$stage/cg-$(echo $path | tr -d /).out"
done
echo "stage $stage"
