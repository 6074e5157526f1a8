# Large bodies and memory. Mounted at /big.
#
# The endpoints sample this process's own VmRSS while data flows, so the tests
# can tell whether the server buffers a whole body in memory: a streaming
# server holds back the app while the client is slow (its RSS stays flat), a
# buffering one lets it run ahead and grows by the size of the body.
import hashlib
import os
import sys

sys.dont_write_bytecode = True
from apputil import dispatch, proc_status, query, read_state, respond_json, safe_token, write_state  # noqa: E402

MIB = 1024 * 1024
# One shared 1 MiB chunk: the app itself allocates nothing per chunk.
CHUNK = bytes(range(256)) * (MIB // 256)


def rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Stream:
    def __init__(self, token, mib):
        self.token = safe_token(token)
        self.mib = mib
        self.sent = 0
        self.start_kb = rss_kb()
        self.peak_kb = self.start_kb

    def __iter__(self):
        for _ in range(self.mib):
            yield CHUNK
            # Runs once the server has taken the previous chunk.
            self.sent += 1
            self.peak_kb = max(self.peak_kb, rss_kb())

    def close(self):
        write_state(self.token, {"pid": os.getpid(), "start_kb": self.start_kb,
                                 "peak_kb": self.peak_kb, "chunks": self.sent, "closed": True})


def stream(environ, start_response):
    q = query(environ)
    mib = int(q.get("mib", "100"))
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Length", str(mib * MIB))])
    return Stream(q["token"], mib)


def upload(environ, start_response):
    inp = environ["wsgi.input"]
    start_kb = rss_kb()
    peak_kb = start_kb
    h = hashlib.sha256()
    total = 0
    since_sample = 0
    while True:
        data = inp.read(65536)
        if not data:
            break
        h.update(data)
        total += len(data)
        since_sample += len(data)
        if since_sample >= MIB:
            since_sample = 0
            peak_kb = max(peak_kb, rss_kb())
    peak_kb = max(peak_kb, rss_kb())
    return respond_json(start_response, {"len": total, "sha256": h.hexdigest(), "pid": os.getpid(),
                                         "start_kb": start_kb, "peak_kb": peak_kb})


def rss(environ, start_response):
    return respond_json(start_response, proc_status())


def state(environ, start_response):
    return respond_json(start_response, {"state": read_state(query(environ)["token"])})


application = dispatch({"stream": stream, "upload": upload, "rss": rss, "state": state})
