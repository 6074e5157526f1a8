"""Load generator for verify.sh: load.py PORT SECONDS THREADS [noka]."""
import http.client, sys, threading, time
port, secs, nthreads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
NOKA = len(sys.argv) > 4
import os
paths = os.environ.get("PATHS", "/app/ /app/env /static/index.html /app/echo").split()
ok = fail = 0; errs = {}
lock = threading.Lock()
def run():
    global ok, fail
    end = time.time() + secs; i = 0
    conn = None
    while time.time() < end:
        p = paths[i % len(paths)]; i += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            if p.endswith("echo"):
                conn.request("POST", p, body=b"x" * 20000, headers={"Connection": "close"} if NOKA else {})
            else:
                conn.request("GET", p, headers={"Connection": "close"} if NOKA else {})
            r = conn.getresponse(); r.read()
            good = r.status == 200
            if r.getheader("Connection", "").lower() == "close" or NOKA:
                conn.close(); conn = None
        except Exception as e:
            good = False; conn = None
            with lock: errs[repr(e)[:80]] = errs.get(repr(e)[:80], 0) + 1
        with lock:
            if good: ok += 1
            else: fail += 1
ts = [threading.Thread(target=run) for _ in range(nthreads)]
[t.start() for t in ts]; [t.join() for t in ts]
print("ok", ok, "fail", fail, errs)
