#!/bin/bash
# Where a hello request's time goes in the nginx workers (docs/profiles.md).
#
#   tests/nginx/profile.sh NAME OUTDIR [BASELINE_DIR]
#
# NAME is a bench contender (oxwsgi-nginx, oxwsgi-nginx@baseline with BASELINE_DIR holding
# an earlier build's modules, nginx-static). Starts it with `bench/run.sh --serve`, loads it
# with wrk -t2 -c32 /hello, and writes OUTDIR/stat.txt (perf stat: CPU, context switches,
# syscalls by kind, over 5 s of both workers), OUTDIR/wrk.txt (the requests of that run),
# OUTDIR/perf.data (perf record -g, 4 s). Divide the counts by Requests/sec x 5.
# Root; the bench lock (/tmp/oxwsgi-bench.lock) makes it wait for a running bench.
set -u
name=$1; out=$2; base=${3:-}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
. tests/nginx/serve-lib.sh
serve_contender "$name" "$out" "$base"
workers=$(for p in ${pids//,/ }; do ps -o pid= --ppid "$p"; done | tr -s ' \n' ',' | sed 's/^,//;s/,$//')
echo "port $port workers $workers" > "$out/info"
wrk -t2 -c32 -d2 "http://127.0.0.1:$port/hello" > /dev/null          # warm-up
wrk -t2 -c32 -d8 "http://127.0.0.1:$port/hello" > "$out/wrk.txt" &
wp=$!
sleep 1
perf stat -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_read \
    -p "$workers" -- sleep 5 2> "$out/stat.txt"
wait $wp
wrk -t2 -c32 -d6 "http://127.0.0.1:$port/hello" > "$out/wrk-record.txt" &
wp=$!
sleep 0.5
perf record -F 1999 -g -o "$out/perf.data" -p "$workers" -- sleep 4 > /dev/null 2>&1
wait $wp
kill -TERM "$(pgrep -f "bench.py.*--serve $name" | head -1)"
wait $sp 2> /dev/null
