#!/bin/bash
# End-to-end checks of the nginx module against Debian's nginx, with numbers.
#   tests/nginx/verify.sh [path/to/liboxwsgi.so]       (default: target/release)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SO=${1:-$HERE/../../target/release/liboxwsgi.so}
export PORT=${PORT:-18231} ROOT=${ROOT:-/tmp/oxngx}
U=http://127.0.0.1:$PORT
fail=0
check() { if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got [$2] want [$3]"; fail=1; fi; }
workers() { pgrep -P "$(cat $ROOT/logs/nginx.pid)"; }
rss_sum() { local s=0; for w in $(workers); do s=$((s + $(awk '/VmRSS/{print $2}' /proc/$w/status))); done; echo $s; }
rss_max() { local m=0 v; for w in $(workers); do v=$(awk '/VmRSS/{print $2}' /proc/$w/status); [ $v -gt $m ] && m=$v; done; echo $m; }
start() { "$HERE/serve.sh" stop >/dev/null; "$HERE/serve.sh" start "$SO" >/dev/null 2>&1 || { echo "nginx failed to start"; exit 1; }
          for i in 1 2 3 4 5 6; do curl -s -o /dev/null $U/app/; done; }

start
check "hello" "$(curl -s $U/app/)" "hello from nginx"
env=$(curl -s "$U/deep/mount/env?q=1")
check "SCRIPT_NAME/PATH_INFO" "$(echo "$env" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["SCRIPT_NAME"], d["PATH_INFO"], d["QUERY_STRING"])')" "/deep/mount /env q=1"
check "500 on exception" "$(curl -s -o /dev/null -w '%{http_code}' $U/app/error)" "500"
curl -s --max-time 5 $U/app/abort -o /dev/null; check "abort truncates (curl 18)" "$?" "18"
for n in 1000 5000000; do
    head -c $n /dev/urandom > /tmp/oxngx-body.bin; want="$n $(sha256sum < /tmp/oxngx-body.bin | cut -c1-64)"
    check "POST $n bytes" "$(curl -s --data-binary @/tmp/oxngx-body.bin $U/app/echo | cut -d' ' -f1,2)" "$want"
    check "POST $n bytes chunked" "$(curl -s -H 'Transfer-Encoding: chunked' --data-binary @/tmp/oxngx-body.bin $U/app/echo | cut -d' ' -f1,2)" "$want"
done
check "413 over client_max_body_size" "$(curl -s -o /dev/null -w '%{http_code}' --data-binary @/tmp/oxngx-body.bin $U/small/echo)" "413"

# 100 MiB upload (temp file path)
head -c $((100 << 20)) /dev/urandom > /tmp/oxngx-body.bin
before=$(rss_max)
out=$(curl -s --data-binary @/tmp/oxngx-body.bin $U/app/echo)
check "POST 100 MiB" "$(echo $out | cut -d' ' -f1,2)" "$((100 << 20)) $(sha256sum < /tmp/oxngx-body.bin | cut -c1-64)"
echo "     upload 100 MiB: worker RSS max $before -> $(rss_max) KiB"
rm -f /tmp/oxngx-body.bin

# 100 MiB generator read at 1 MB/s for 6 s, then the client goes away
rm -f $ROOT/state/stream-close
before=$(rss_sum); peak=$before
curl -s --limit-rate 1M -o /dev/null "$U/app/stream?100" & C=$!
for i in 1 2 3 4 5 6; do sleep 1; r=$(rss_sum); [ $r -gt $peak ] && peak=$r; done
kill $C; wait $C 2>/dev/null; sleep 0.5
echo "     slow 100 MiB stream: workers' RSS sum $before -> peak $peak KiB (+$(( (peak - before) / 1024 )) MiB)"
check "close() after disconnect" "$(cut -d' ' -f1,2 $ROOT/state/stream-close 2>/dev/null)" "closed after"
[ $((peak - before)) -lt $((32 << 10)) ]; check "stream RSS growth < 32 MiB" "$?" "0"

# 8 x 1 s app + fast requests
echo "     latency (thread_pool default threads=8):"; "$HERE/latency.sh" | sort | awk '{a[$1]=a[$1]" "$2} END {for (k in a) print "       "k":"a[k]}'

# reload under load (no keepalive: every request on a fresh connection)
M=$(cat $ROOT/logs/nginx.pid); old=$(workers | tr '\n' ' ')
python3 "$HERE/load.py" $PORT 8 8 noka > /tmp/oxngx-load.txt & L=$!
sleep 2; kill -HUP $M; sleep 2; kill -HUP $M; sleep 1; kill -HUP $M; wait $L
echo "     reload x3 under load: $(cat /tmp/oxngx-load.txt); workers $old-> $(workers | tr '\n' ' ')"
check "no failed request across reloads" "$(awk '{print $4}' /tmp/oxngx-load.txt)" "0"
sleep 1
left=0; for p in $old; do kill -0 $p 2>/dev/null && left=1; done
check "old workers gone" "$left" "0"
check "no crash/alert in the log" "$(grep -cE 'exited on signal|\[alert\]|\[emerg\]' $ROOT/logs/error.log)" "0"

"$HERE/serve.sh" stop >/dev/null
check "all nginx processes gone" "$(pgrep -f "nginx.*$ROOT" | wc -l)" "0"
exit $fail
