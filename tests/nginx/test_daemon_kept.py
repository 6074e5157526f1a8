"""Kept connections from nginx's workers to a group's daemons (protocol 3,
docs/nginx-daemon.md "Kept connections"), with the real nginx: a worker carries its
requests over a connection it keeps, so the daemon sees far fewer connections than
requests; a daemon recycled between two requests on a kept connection fails no request
(the request goes again on a new connection); a graceful quit closes the idle ones."""

import os
import re
import signal
import time

import requests

from test_daemon_faults import fields, start, stop, wait_for


def sockets(s):
    return sorted(str(p) for p in (s.stage.root / "run").glob("oxwsgi.*.sock"))


def accepted(s):
    """The inodes of the daemons' accepted connections (an accepted UNIX socket shows its
    listener's path in /proc/net/unix; state 03: connected)."""
    paths = set(sockets(s))
    out = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[7] in paths and parts[5] == "03":
                out.add(parts[6])
    return out


def test_requests_reuse_a_kept_connection():
    s = start("ngx-d-kept", "    wsgi_daemon_process kept processes=1 threads=4;\n",
              "        location /k/ { wsgi_app {d}/fault.wsgi; wsgi_process_group kept; }\n")
    try:
        seen = set()
        pids = set()
        with requests.Session() as http:  # one client connection: one nginx worker
            for _ in range(30):
                r = http.get(s.url("/k/hello"), timeout=10)
                assert r.status_code == 200, (r.status_code, r.text)
                pids.add(fields(r.text)["pid"])
                now = accepted(s)
                # the connection stays open between requests, ready for the next one
                assert now, "no connection kept to the daemon after a request"
                seen |= now
        assert len(pids) == 1, pids
        # 30 requests, one connection (two if a wakeup raced a close: still reuse)
        assert len(seen) <= 2, (len(seen), seen)
    finally:
        stop(s)


def test_a_graceful_quit_closes_kept_connections():
    s = start("ngx-d-kept-quit", "    wsgi_daemon_process q processes=1 threads=4;\n",
              "        location /q/ { wsgi_app {d}/fault.wsgi; wsgi_process_group q; }\n")
    try:
        with requests.Session() as http:
            for _ in range(5):
                assert http.get(s.url("/q/hello"), timeout=10).status_code == 200
        assert accepted(s)
        mark = len(s.log_since())
        os.kill(s.proc.pid, signal.SIGQUIT)
        s.proc.wait(30)
        log = s.log_since()[mark:]
        # nginx names every connection a worker left open at a graceful exit
        assert "open socket" not in log, log
        assert s.proc.returncode == 0, s.proc.returncode
    finally:
        stop(s)


def test_a_daemon_recycled_between_requests_fails_no_request():
    s = start("ngx-d-kept-recycle", "    wsgi_daemon_process rc processes=1 threads=2 maximum_requests=3;\n",
              "        location /rc/ { wsgi_app {d}/fault.wsgi; wsgi_process_group rc; }\n")
    try:
        pids = []
        with requests.Session() as http:
            for i in range(24):
                r = http.get(s.url("/rc/hello"), timeout=20)
                assert r.status_code == 200, (i, r.status_code, r.text, s.log_tail(20))
                pids.append(fields(r.text)["pid"])
                if i % 2:
                    # idle a moment: the recycled daemon's close reaches the kept
                    # connection while it waits in the worker's pool
                    time.sleep(0.3)
        assert len(set(pids)) >= 4, pids
        assert not re.search(r"process group \"rc\":", s.log_since()), s.log_tail(30)
    finally:
        stop(s)
