"""CPU per call of the bench's Flask or Django app in this Python process, without a server:
one thread, or N threads taking turns (one at a time, a baton passed round-robin), to see
whether per-thread state of the app costs anything (docs/profiles.md, "Real apps").

    PYTHONPATH=/opt/oxwsgi-bench-venv/lib/python3.11/site-packages \
        /usr/bin/python3.11 bench/percall.py django 1 6000     # or flask; threads; calls

Run it under another interpreter binary (e.g. one linked against libpython3.11.so, as an
embedding server is) to compare the two builds of CPython; under
`valgrind --tool=callgrind` with 0 and with 500 calls for instructions per call.
"""

import io
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps"))
which, nthreads, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mod = __import__(which + "app")
app = mod.application
def env():
    return {"REQUEST_METHOD": "GET", "PATH_INFO": f"/{which}/page", "SCRIPT_NAME": "", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False}
def call():
    st = []
    body = b"".join(app(env(), lambda s, h, e=None: st.append(s)))
    assert st[0].startswith("200"), st
for _ in range(200): call()
# N threads, handing a baton round-robin: only one runs at a time
sems = [threading.Semaphore(0) for _ in range(nthreads)]
per = n // nthreads
cpu = [0.0]
def worker(i):
    for k in range(per):
        sems[i].acquire()
        call()
        sems[(i + 1) % nthreads].release()
ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
for t in ts: t.start()
c0 = time.process_time(); w0 = time.perf_counter()
sems[0].release()
for t in ts: t.join()
c1 = time.process_time(); w1 = time.perf_counter()
print(f"{which} threads={nthreads} calls={per*nthreads} cpu_us/call={(c1-c0)/(per*nthreads)*1e6:.1f} wall_us/call={(w1-w0)/(per*nthreads)*1e6:.1f}")
