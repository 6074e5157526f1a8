"""20 `nginx -s reload` (SIGHUP) under concurrent load: no failed request, no worker
left behind, no alert or crash in the error log."""

import os
import signal
import threading
import time

import requests

from harness import procs, servers


def test_reloads_under_load():
    srv = servers.create("nginx")
    srv.start()
    try:
        stop = threading.Event()
        ok, failed = [0], []
        lock = threading.Lock()

        def load():
            # A fresh connection per request: an old worker closes idle keep-alive
            # connections when it shuts down, and a request sent on one at that instant is
            # lost in transit (clients retry those); that race is HTTP's, not the module's.
            while not stop.is_set():
                try:
                    r = requests.get(srv.url("/env/dump"), timeout=30, headers={"Connection": "close"})
                    good = r.status_code == 200 and r.json()["environ"]["PATH_INFO"]["value"] == "/dump"
                except Exception as e:  # noqa: BLE001 - every failure is recorded
                    good, r = False, e
                with lock:
                    if good:
                        ok[0] += 1
                    else:
                        failed.append(repr(r)[:200])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        master = srv.proc.pid
        for _ in range(20):
            os.kill(master, signal.SIGHUP)
            time.sleep(0.5)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(60)
        assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}"
        assert ok[0] > 100
        # Old workers are gone: only the master and the configured 2 workers remain.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            kids = [p for p in procs.children(master) if procs.alive(p)]
            if len(kids) <= 2:
                break
            time.sleep(0.2)
        assert len(kids) <= 2, f"workers left behind after reloads: {kids}"
        log = srv.error_log()
        assert log.count("reconfiguring") >= 20 or log.count("signal 1 (SIGHUP) received") >= 20, log[-2000:]
        srv.check_log()
        print(f"requests served during 20 reloads: {ok[0]}")
    finally:
        srv.stop()
        srv.cleanup()
