#!/bin/bash
# Where a real-app request's time goes (docs/profiles.md, "Real apps"): any bench contender.
#
#   tests/nginx/profile-apps.sh NAME OUTDIR [BASELINE_DIR]        (root)
#
# Starts NAME with `bench/run.sh --serve` (oxwsgi-nginx@baseline with BASELINE_DIR holding an
# earlier build's modules; bjoern; ...), then for each workload in $WLS (default "django
# flask", URL /<wl>/page) under wrk -t2 -c32: OUTDIR/<wl>/stat.txt (perf stat over 5 s of
# every process of the contender: CPU, context switches, syscalls by kind), wrk.txt (the
# requests of that run: divide the counts by Requests/sec x 5), perf.data (perf record -g,
# 4 s), futex.data (who makes the futex calls, 2 s), load.txt (uptime before and after).
# STATONLY=1 skips the two recordings.
set -u
name=$1; out=$2; base=${3:-}
mkdir -p "$out"; out=$(cd "$out" && pwd)   # absolute: the script changes directory
cd "$(dirname "$0")/../.."
. tests/nginx/serve-lib.sh
serve_contender "$name" "$out" "$base"
all=$(for p in ${pids//,/ }; do echo $p; ps -o pid= --ppid "$p"; done | tr -d ' ' | sort -u | grep . | tr '\n' ',' | sed 's/,$//')
echo "port $port pids $all" > "$out/info"
for wl in ${WLS:-django flask}; do
  url="http://127.0.0.1:$port/$wl/page"
  o=$out/$wl; mkdir -p $o
  uptime > $o/load.txt
  wrk -t2 -c32 -d3 "$url" > $o/warm.txt
  wrk -t2 -c32 -d8 "$url" > "$o/wrk.txt" &
  wp=$!
  sleep 1
  perf stat -e task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_sched_yield \
      -p "$all" -- sleep 5 2> "$o/stat.txt"
  wait $wp
  [ -n "${STATONLY:-}" ] && { uptime >> $o/load.txt; continue; }
  wrk -t2 -c32 -d6 "$url" > "$o/wrk-record.txt" &
  wp=$!
  sleep 0.5
  perf record -F 999 -g -o "$o/perf.data" -p "$all" -- sleep 4 > /dev/null 2>&1
  wait $wp
  wrk -t2 -c32 -d4 "$url" > "$o/wrk-futex.txt" &
  wp=$!
  sleep 0.5
  perf record -e syscalls:sys_enter_futex -g -o "$o/futex.data" -p "$all" -- sleep 2 > /dev/null 2>&1
  wait $wp
  uptime >> $o/load.txt
done
kill -TERM "$(pgrep -f "bench.py.*--serve $name" | head -1)"
wait $sp 2> /dev/null
