#!/bin/bash
# 8 requests to an app sleeping 1 s, then fast WSGI and static requests meanwhile.
P=${PORT:-18231}
for i in $(seq 8); do curl -s -o /dev/null -w "slow %{time_total}\n" http://127.0.0.1:$P/app/sleep & done
sleep 0.3
for i in 1 2 3 4 5; do
    curl -s -o /dev/null -w "fast-wsgi %{time_total}\n" http://127.0.0.1:$P/app/
    curl -s -o /dev/null -w "static %{time_total}\n" http://127.0.0.1:$P/static/index.html
    sleep 0.05
done
wait
