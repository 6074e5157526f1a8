"""100 MiB through the server in both directions without the worker's memory
growing by the size of the body (limit: 32 MiB of RSS growth).

The app samples its own VmRSS while data flows (see apps/bigdata.wsgi). For
the download, the client first stalls for a moment without reading: a server
that buffers would let the app race ahead and its RSS would grow by ~100 MiB;
one that applies back-pressure blocks the app until the client reads.
"""

import hashlib
import json
import time

import requests

from harness.rawhttp import build_request

MIB = 1024 * 1024
SIZE_MIB = 100
LIMIT_KB = 32 * 1024
CHUNK = bytes(range(256)) * (MIB // 256)


def expected_stream_sha(mib):
    h = hashlib.sha256()
    for _ in range(mib):
        h.update(CHUNK)
    return h.hexdigest()


def wait_state(server, token, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        st = requests.get(server.url(f"/big/state?token={token}"), timeout=10).json()["state"]
        if st is not None or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_rss_endpoint(server):
    d = requests.get(server.url("/big/rss"), timeout=10).json()
    assert d["pid"] > 1 and d["VmRSS_kb"] > 1000


def test_stream_100mib_with_slow_start_keeps_rss_flat(server, token):
    with server.raw(timeout=60) as c:
        c.send(build_request("GET", f"/big/stream?token={token}&mib={SIZE_MIB}", close=True))
        time.sleep(1.5)  # stall: socket buffers fill, the app must be held back
        head = c.read_head()
        assert head.status == 200
        assert int(head.header("Content-Length")) == SIZE_MIB * MIB
        got, digest = c.drain_hashed()
    assert got == SIZE_MIB * MIB
    assert digest == expected_stream_sha(SIZE_MIB)
    st = wait_state(server, token)
    assert st is not None and st["chunks"] == SIZE_MIB
    growth = st["peak_kb"] - st["start_kb"]
    print(f"\n[{server.name}] worker RSS growth streaming {SIZE_MIB} MiB: {growth} kB")
    assert growth < LIMIT_KB, f"worker RSS grew by {growth} kB while streaming {SIZE_MIB} MiB"


class SizedBody:
    """A file-like body of known length, generated on the fly (requests sends
    it with Content-Length, without holding it in memory)."""

    def __init__(self, mib):
        self.left = mib * MIB
        self.size = self.left
        self.block = bytes((i * 7) % 251 for i in range(MIB))

    def __len__(self):
        return self.size

    def read(self, n=-1):
        # The stream is `block` repeated; any read size gives the same bytes.
        if self.left <= 0:
            return b""
        pos = (self.size - self.left) % MIB
        n = MIB if n is None or n < 0 else n
        n = min(n, MIB - pos, self.left)
        self.left -= n
        return self.block[pos:pos + n]


def sized_sha(mib):
    b = SizedBody(mib)
    h = hashlib.sha256()
    while True:
        d = b.read(MIB)
        if not d:
            return h.hexdigest()
        h.update(d)


def test_upload_100mib_keeps_rss_flat(server):
    # Same connection for the baseline and the upload: same worker process.
    # In daemon mode (apache-daemon: 2 processes) two requests of one connection may reach
    # different daemons: try again until both ran in one process.
    for _ in range(10):
        body = SizedBody(SIZE_MIB)
        with server.raw(timeout=120) as c:
            c.send(build_request("GET", "/big/rss"))
            before = json.loads(c.read_response().body)
            c.send(build_request("POST", "/big/upload", headers=[("Content-Length", str(len(body)))],
                                 close=True))
            while True:
                d = body.read(MIB)
                if not d:
                    break
                c.send(d)
            r = c.read_response("POST")
        assert r.status == 200, r
        d = json.loads(r.body)
        if d["pid"] == before["pid"] or not server.name.endswith("-daemon"):
            break
    if d["pid"] == before["pid"]:
        base = before["VmRSS_kb"]
    else:
        # Daemon mode only: an Apache thread or nginx worker keeps one connection per
        # daemon, so the second request may go to the other daemon however often we try.
        # A daemon pulls the body from the server as the application reads it: nothing of
        # it is in the daemon when the upload starts, so its own start is the baseline.
        assert server.name.endswith("-daemon"), "keep-alive connection moved to another process"
        base = d["start_kb"]
    assert d["len"] == SIZE_MIB * MIB
    assert d["sha256"] == sized_sha(SIZE_MIB)
    growth = d["peak_kb"] - base
    print(f"\n[{server.name}] worker RSS growth reading a {SIZE_MIB} MiB upload: {growth} kB")
    assert growth < LIMIT_KB, f"worker RSS grew by {growth} kB while reading a {SIZE_MIB} MiB upload"


def test_chunked_upload_20mib(server):
    def gen():
        b = SizedBody(20)
        while True:
            d = b.read(256 * 1024)
            if not d:
                return
            yield d
    r = requests.post(server.url("/big/upload"), data=gen(), timeout=120)
    assert r.status_code == 200, r.text[:500]
    d = r.json()
    assert d["len"] == 20 * MIB
    assert d["sha256"] == sized_sha(20)
