#!/bin/bash
# Start / stop a private nginx with the freshly built module, for manual checks.
#   tests/nginx/serve.sh start [path/to/liboxwsgi.so]   (port $PORT, default 18231)
#   tests/nginx/serve.sh stop
# Everything lives in $ROOT (default /tmp/oxngx), readable by www-data.
set -euo pipefail
ROOT=${ROOT:-/tmp/oxngx}
PORT=${PORT:-18231}
HERE=$(cd "$(dirname "$0")" && pwd)
cmd=${1:-start}
if [ "$cmd" = stop ]; then
    if [ -f "$ROOT/logs/nginx.pid" ]; then
        pid=$(cat "$ROOT/logs/nginx.pid")
        kids=$(pgrep -P "$pid" || true)
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            alive=0
            for p in $pid $kids; do kill -0 "$p" 2>/dev/null && alive=1; done
            [ $alive = 0 ] && break
            sleep 0.2
        done
        for p in $pid $kids; do kill -0 "$p" 2>/dev/null && { echo "still alive: $p"; exit 1; }; done
    fi
    echo stopped
    exit 0
fi
SO=${2:-$HERE/../../target/ngx-dev/debug/liboxwsgi.so}
rm -f "$ROOT/logs/error.log"
mkdir -p "$ROOT"/{logs,tmp,state,modules,apps,static}
chmod 755 "$ROOT"; chmod 1777 "$ROOT/state"
# a new file, never an in-place overwrite of a .so that running workers have mapped
cp --remove-destination "$SO" "$ROOT/modules/ngx_http_oxwsgi_module.so"
cp "$HERE/app.wsgi" "$ROOT/apps/app.wsgi"
echo "static file" > "$ROOT/static/index.html"
cat > "$ROOT/nginx.conf" <<CONF
load_module $ROOT/modules/ngx_http_oxwsgi_module.so;
user www-data; master_process on; daemon off; worker_processes 2; ${EXTRA_MAIN:-}
pid $ROOT/logs/nginx.pid;
error_log $ROOT/logs/error.log info;
thread_pool default threads=${THREADS:-8};
events { worker_connections 512; }
http {
    access_log $ROOT/logs/access.log;
    client_body_temp_path $ROOT/tmp/body;
    proxy_temp_path $ROOT/tmp/proxy;
    fastcgi_temp_path $ROOT/tmp/fastcgi;
    uwsgi_temp_path $ROOT/tmp/uwsgi;
    scgi_temp_path $ROOT/tmp/scgi;
    client_max_body_size 200m;
    ${EXTRA_HTTP:-}
    server {
        listen 127.0.0.1:$PORT;
        ${EXTRA_LISTEN:-}
        server_name localhost;
        location /static/ { root $ROOT; }
        location /app { wsgi_app $ROOT/apps/app.wsgi; wsgi_param X_CUSTOM "\$request_method-\$server_port"; }
        location /deep/mount/ { wsgi_app $ROOT/apps/app.wsgi; wsgi_pass_authorization on; }
        location /small { client_max_body_size 1k; wsgi_app $ROOT/apps/app.wsgi; }
        ${EXTRA_SERVER:-}
    }
}
CONF
chmod -R a+rX "$ROOT"
/usr/sbin/nginx -t -p "$ROOT/" -c "$ROOT/nginx.conf"
/usr/sbin/nginx -p "$ROOT/" -c "$ROOT/nginx.conf" > "$ROOT/logs/stdout" 2>&1 &
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/static/index.html" && break
    sleep 0.1
done
echo "started on $PORT, master $(cat "$ROOT/logs/nginx.pid")"
