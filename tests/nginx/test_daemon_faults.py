"""Daemon mode on nginx under faults and load, with the real nginx (docs/nginx-daemon.md):
request_timeout answers 504 and the group goes on; a daemon killed mid-request costs that
request only; queue_timeout answers 503; maximum_requests and reloads under load fail no
request; a slow daemon request does not hold up the worker's other connections; two groups
keep their applications apart (processes, users, interpreters)."""

import concurrent.futures
import os
import socket
from pathlib import Path
import pwd
import re
import signal
import threading
import time

import requests

from custom import CustomNginx
from harness import procs

APP = r"""
import os, sys, time
MARK = []
def application(environ, start_response):
    path = environ['PATH_INFO']
    q = environ.get('QUERY_STRING', '')
    if path == '/sleep':
        time.sleep(float(q or '1'))
    elif path == '/pidfile':
        with open(q, 'w') as f:
            f.write(str(os.getpid()))
        time.sleep(30)
    elif path == '/mark':
        MARK.append(environ['mod_wsgi.process_group'])
    elif path == '/down':
        piece = bytes(range(256)) * 1024
        n = int(q) * 4
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(n * len(piece)))])
        return (piece for _ in range(n))
    elif path == '/up':
        total, inp = 0, environ['wsgi.input']
        while True:
            c = inp.read(65536)
            if not c:
                break
            total += len(c)
        body = str(total).encode()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [body]
    body = ('group=%s pid=%d uid=%d prefix=%s marks=%s' % (
        environ.get('mod_wsgi.process_group'), os.getpid(), os.getuid(), sys.prefix, ','.join(MARK))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"""


class FaultNginx(CustomNginx):
    def config_text(self):
        d = self.stage.root / "extra"
        d.mkdir(exist_ok=True)
        (d / "fault.wsgi").write_text(APP)
        (d / "fault.wsgi").chmod(0o644)
        return super().config_text()


def start(name, groups, locations):
    # CustomNginx formats the text with {d}: nginx's own braces are doubled here.
    locations = locations.replace("{", "{{").replace("}", "}}").replace("{{d}}", "{d}")
    s = FaultNginx(name, locations=locations, http_extra=groups)
    s.start()
    wait_for(lambda: s.log_since().count("serving on") >= s.log_since().count("started (processes="),
             what="the daemons serving")
    return s


def stop(s):
    s.stop()
    s.check_log()
    s.cleanup()


def wait_for(pred, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def fields(text):
    return dict(kv.split("=", 1) for kv in text.split())


def test_request_timeout_answers_504_and_the_group_recovers():
    s = start("ngx-d-timeout", "    wsgi_daemon_process t processes=1 threads=2 request_timeout=2s;\n",
              "        location /t/ { wsgi_app {d}/fault.wsgi; wsgi_process_group t; }\n")
    try:
        t0 = time.monotonic()
        r = requests.get(s.url("/t/sleep?20"), timeout=30)
        took = time.monotonic() - t0
        assert r.status_code == 504, (r.status_code, r.text)
        assert took < 10, took
        # the group goes on serving (the interrupted thread, or a fresh process)
        wait_for(lambda: requests.get(s.url("/t/hello"), timeout=10).status_code == 200, what="recovery")
        assert re.search(r"daemon group t \(pid \d+\): request-timeout", s.log_since()), s.log_tail(30)
    finally:
        stop(s)


def test_a_killed_daemon_fails_its_request_only_and_is_replaced():
    s = start("ngx-d-kill", "    wsgi_daemon_process k processes=2 threads=4;\n",
              "        location /k/ { wsgi_app {d}/fault.wsgi; wsgi_process_group k; }\n")
    pidfile = s.stage.root / "extra" / "victim.pid"
    os.chmod(s.stage.root / "extra", 0o777)
    try:
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", requests.get(
            s.url(f"/k/pidfile?{pidfile}"), timeout=60)))
        t.start()
        victim = int(wait_for(lambda: pidfile.exists() and pidfile.read_text(), what="the victim's pid"))
        others = [requests.get(s.url("/k/hello"), timeout=10) for _ in range(4)]
        os.kill(victim, signal.SIGKILL)
        t.join(60)
        assert 500 <= box["r"].status_code < 600, box["r"].status_code
        assert all(r.status_code == 200 for r in others)
        wait_for(lambda: re.search(rf'daemon process {victim} of group "k" exited \(killed by signal 9', s.log_since()),
                 what="the replacement")
        got = [requests.get(s.url("/k/hello"), timeout=10) for _ in range(10)]
        assert all(r.status_code == 200 for r in got)
        assert str(victim) not in {fields(r.text)["pid"] for r in got}
    finally:
        stop(s)


def test_queue_timeout_answers_503():
    s = start("ngx-d-queue", "    wsgi_daemon_process q processes=1 threads=1 queue_timeout=1s;\n",
              "        location /q/ { wsgi_app {d}/fault.wsgi; wsgi_process_group q; }\n")
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            busy = ex.submit(requests.get, s.url("/q/sleep?4"), timeout=30)
            time.sleep(0.5)
            t0 = time.monotonic()
            r = requests.get(s.url("/q/hello"), timeout=30)
            took = time.monotonic() - t0
            assert r.status_code == 503, r.status_code
            assert took < 3.5, took
            assert busy.result().status_code == 200
    finally:
        stop(s)


def hammer(s, path, stop_at, clients=4, fresh=False):
    """Requests from `clients` threads until stop_at(); (ok, failed, pids). `fresh`: a new
    connection per request (as harness/load.py: a request sent on a keep-alive connection
    the instant a retiring worker closes it is lost in transit, a race of HTTP itself)."""
    ok, failed, pids = [0], [], set()
    lock = threading.Lock()
    done = threading.Event()

    def run():
        sess = requests.Session()
        headers = {"Connection": "close"} if fresh else {}
        while not done.is_set():
            try:
                r = sess.get(s.url(path), timeout=30, headers=headers)
                with lock:
                    if r.status_code == 200:
                        ok[0] += 1
                        pids.add(fields(r.text)["pid"])
                    else:
                        failed.append(r.status_code)
            except requests.RequestException as e:
                with lock:
                    failed.append(repr(e))
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        stop_at()
    finally:
        done.set()
        for t in threads:
            t.join(60)
    return ok[0], failed, pids


def test_maximum_requests_recycles_without_a_failed_request():
    s = start("ngx-d-maxreq", "    wsgi_daemon_process m processes=2 threads=4 maximum_requests=25;\n",
              "        location /m/ { wsgi_app {d}/fault.wsgi; wsgi_process_group m; }\n")
    try:
        ok, failed, pids = hammer(s, "/m/hello", lambda: time.sleep(6))
        print(f"maximum_requests=25: {ok} requests, {len(failed)} failed, {len(pids)} daemon pids")
        assert not failed, failed[:10]
        assert ok > 100 and len(pids) > 2, (ok, pids)
    finally:
        stop(s)


def test_twenty_reloads_under_load_fail_no_request():
    s = start("ngx-d-reloads", "    wsgi_daemon_process r processes=2 threads=4 graceful_timeout=5s;\n",
              "        location /r/ { wsgi_app {d}/fault.wsgi; wsgi_process_group r; }\n")
    try:
        def reloads():
            for _ in range(20):
                os.kill(s.proc.pid, signal.SIGHUP)
                time.sleep(0.5)
            time.sleep(1)
        ok, failed, _ = hammer(s, "/r/hello", reloads, fresh=True)
        print(f"20 reloads: {ok} requests, {len(failed)} failed")
        assert not failed, failed[:10]
        assert ok > 100

        def settled():
            keepers = [p for p in procs.children(s.proc.pid)
                       if procs.alive(p) and open(f"/proc/{p}/comm").read().strip() == "oxwsgi-keeper"]
            daemons = [d for k in keepers for d in procs.children(k) if procs.alive(d)]
            return len(keepers) == 1 and len(daemons) == 2
        wait_for(settled, timeout=40, what="one keeper with exactly 2 daemons")
    finally:
        stop(s)


def test_a_slow_daemon_request_does_not_hold_up_the_worker():
    s = start("ngx-d-slow", "    wsgi_daemon_process slow processes=1 threads=8;\n",
              "        location /slow/ { wsgi_app {d}/fault.wsgi; wsgi_process_group slow; }\n"
              "        location /embedded/ { wsgi_app {d}/fault.wsgi; }\n")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            slow = [ex.submit(requests.get, s.url("/slow/sleep?3"), timeout=30) for _ in range(6)]
            time.sleep(0.5)
            worst = 0.0
            for path in ["/static.txt", "/embedded/hello"] * 5:
                t0 = time.monotonic()
                r = requests.get(s.url(path), timeout=10)
                worst = max(worst, time.monotonic() - t0)
                assert r.status_code == 200, (path, r.status_code)
            print(f"slowest static/embedded answer beside 6 slow daemon requests: {worst * 1000:.1f} ms")
            # Not a speed assertion: a worker blocked by the daemon requests would take ~3 s.
            assert worst < 1.0, worst
            assert all(f.result().status_code == 200 for f in slow)
    finally:
        stop(s)


def test_two_groups_keep_their_applications_apart():
    groups = ("    wsgi_daemon_process a processes=1 threads=2 user=nobody;\n"
              "    wsgi_daemon_process b processes=1 threads=2 python_home=/usr;\n")
    locations = ("        location /a/ { wsgi_app {d}/fault.wsgi; wsgi_process_group a; }\n"
                 "        location /b/ { wsgi_app {d}/fault.wsgi; wsgi_process_group b; }\n")
    s = start("ngx-d-isolation", groups, locations)
    try:
        for _ in range(3):
            assert requests.get(s.url("/a/mark"), timeout=10).status_code == 200
        a = fields(requests.get(s.url("/a/x"), timeout=10).text)
        b = fields(requests.get(s.url("/b/x"), timeout=10).text)
        assert a["group"] == "a" and b["group"] == "b"
        assert a["pid"] != b["pid"]
        assert int(a["uid"]) == pwd.getpwnam("nobody").pw_uid and int(b["uid"]) != int(a["uid"])
        # module state is per group: b never saw a's marks
        assert a["marks"] == "a,a,a" and b["marks"] == "", (a, b)
        # each group its interpreter's prefix: the test venv vs the system Python
        assert a["prefix"] != b["prefix"] and b["prefix"] == "/usr", (a, b)
    finally:
        stop(s)


def status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0])
    return out


class Peaks:
    """Peak RSS growth (kB) of processes from now on: the kernel's peak mark is reset
    (clear_refs <- 5), the growth is VmHWM afterwards minus VmRSS at the reset."""

    def __init__(self, pids):
        self.base = {}
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.base[pid] = status(pid)["VmRSS"]

    def growth(self):
        return max(status(pid)["VmHWM"] - base for pid, base in self.base.items())


def test_100_mib_both_ways_with_bounded_memory():
    s = start("ngx-d-big", "    wsgi_daemon_process big processes=1 threads=2;\n",
              "        location /big/ { wsgi_app {d}/fault.wsgi; wsgi_process_group big; "
              "client_max_body_size 200m; }\n")
    try:
        keeper = [p for p in procs.children(s.proc.pid) if open(f"/proc/{p}/comm").read().strip() == "oxwsgi-keeper"]
        workers = [p for p in procs.children(s.proc.pid) if p not in keeper]
        daemons = [p for k in keeper for p in procs.children(k)]
        assert workers and daemons
        # warm up both sides
        assert requests.get(s.url("/big/down?1"), timeout=30).status_code == 200
        mib100 = 100 * 1024 * 1024

        peaks = Peaks(workers + daemons)
        # Down, the client stalling first: a side that buffered would race ahead.
        with socket.create_connection(("127.0.0.1", s.port), timeout=60) as c:
            c.sendall(b"GET /big/down?100 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            time.sleep(1.5)
            got = 0
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                got += len(b)
        assert got > mib100, got
        down = {p: status(p)["VmHWM"] - peaks.base[p] for p in peaks.base}

        peaks = Peaks(workers + daemons)
        chunk = b"x" * (1 << 20)
        r = requests.post(s.url("/big/up"), data=(chunk for _ in range(100)), timeout=120)
        assert r.status_code == 200 and r.text == str(mib100), (r.status_code, r.text[:200])
        up = {p: status(p)["VmHWM"] - peaks.base[p] for p in peaks.base}

        w_down, w_up = max(down[p] for p in workers), max(up[p] for p in workers)
        d_down, d_up = max(down[p] for p in daemons), max(up[p] for p in daemons)
        print(f"100 MiB down: worker peak growth {w_down} kB, daemon {d_down} kB; "
              f"100 MiB up: worker {w_up} kB, daemon {d_up} kB")
        for v in (w_down, w_up, d_down, d_up):
            assert v < 32 * 1024, (down, up)
    finally:
        stop(s)
