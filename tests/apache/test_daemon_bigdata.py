"""100 MiB down and 100 MiB up through a daemon group with bounded memory on BOTH sides:
the Apache child relaying the request and the daemon running the application each grow by
less than 32 MiB (tests/conformance/test_bigdata.py's limit and apps/bigdata.wsgi).

Measured from outside, the same way for both processes: the kernel's peak-RSS mark is reset
(`/proc/PID/clear_refs` <- 5) after a warm-up, and the growth is `VmHWM` afterwards minus
`VmRSS` at the reset -- the true peak, not a sample. For the download the client stalls
first: a side that buffers would let the application race ahead by the whole body."""

import hashlib
import json
import time
import uuid
from pathlib import Path

import pytest

from harness.rawhttp import build_request
from test_daemon import DaemonServer

MIB = 1024 * 1024
SIZE_MIB = 100
LIMIT_KB = 32 * 1024
CHUNK = bytes(range(256)) * (MIB // 256)
BLOCK = bytes((i * 7) % 251 for i in range(MIB))

GROUP = """
WSGIDaemonProcess big processes=1 threads=4 python-path={stage}/apps display-name=%{{GROUP}}
WSGIScriptAlias /dbig {stage}/apps/bigdata.wsgi process-group=big
"""


def status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


class Peaks:
    """Peak RSS growth of a set of processes from now on."""

    def __init__(self, pids):
        self.base = {}
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            self.base[pid] = status(pid)["VmRSS"]

    def growth(self):
        return max(status(pid)["VmHWM"] - base for pid, base in self.base.items())


@pytest.fixture(scope="module")
def srv():
    s = DaemonServer("apache-daemon-big", GROUP)
    s.start()
    s.wait_daemons(1)
    yield s
    s.stop()
    s.cleanup()


def apache_children(srv):
    daemons = set(srv.daemons())
    import harness.procs as procs
    return [p for p in procs.children(srv.master_pid) if p not in daemons and procs.alive(p)]


def download(srv, mib, stall=0.0):
    token = uuid.uuid4().hex[:16]
    with srv.raw(timeout=120) as c:
        c.send(build_request("GET", f"/dbig/stream?token={token}&mib={mib}", close=True))
        time.sleep(stall)
        head = c.read_head()
        assert head.status == 200
        got, digest = c.drain_hashed()
    assert got == mib * MIB
    want = hashlib.sha256()
    for _ in range(mib):
        want.update(CHUNK)
    assert digest == want.hexdigest()


def upload(srv, mib):
    with srv.raw(timeout=120) as c:
        c.send(build_request("POST", "/dbig/upload", headers=[("Content-Length", str(mib * MIB))], close=True))
        for _ in range(mib):
            c.send(BLOCK)
        r = c.read_response("POST")
    assert r.status == 200, r
    d = json.loads(r.body)
    want = hashlib.sha256()
    for _ in range(mib):
        want.update(BLOCK)
    assert (d["len"], d["sha256"]) == (mib * MIB, want.hexdigest())
    return d


def warm_up(srv):
    for _ in range(3):
        download(srv, 2)
        upload(srv, 2)


@pytest.mark.parametrize("direction", ["down", "up"])
def test_100mib_through_a_daemon_group_keeps_both_sides_flat(srv, direction):
    warm_up(srv)
    daemon = srv.daemons("big")
    assert len(daemon) == 1
    apache, ours = Peaks(apache_children(srv)), Peaks(daemon)
    if direction == "down":
        download(srv, SIZE_MIB, stall=1.5)
    else:
        assert upload(srv, SIZE_MIB)["pid"] == daemon[0]
    a, d = apache.growth(), ours.growth()
    print(f"\n100 MiB {direction} through daemon group: Apache child peak RSS growth {a} kB, "
          f"daemon peak RSS growth {d} kB")
    assert srv.daemons("big") == daemon, "the daemon was replaced during the transfer"
    assert a < LIMIT_KB, f"the Apache child grew by {a} kB relaying {SIZE_MIB} MiB {direction}"
    assert d < LIMIT_KB, f"the daemon grew by {d} kB moving {SIZE_MIB} MiB {direction}"
