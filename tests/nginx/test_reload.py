"""20 `nginx -s reload` (SIGHUP) under concurrent load: no failed request, no worker
left behind, no alert or crash in the error log."""

import os
import signal
import time

from harness import procs, servers
from harness.load import Load


def test_reloads_under_load():
    srv = servers.create("nginx")
    srv.start()
    try:
        check = lambda r: r.status_code == 200 and r.json()["environ"]["PATH_INFO"]["value"] == "/dump"  # noqa: E731
        master = srv.proc.pid
        with Load(srv.url("/env/dump"), check) as load:
            for i in range(20):
                os.kill(master, signal.SIGHUP)
                # The next signal once the master took this one (two pending SIGHUPs are one).
                deadline = time.monotonic() + 20
                while srv.error_log().count("signal 1 (SIGHUP) received") < i + 1:
                    assert time.monotonic() < deadline, srv.log_tail(20)
                    time.sleep(0.05)
                time.sleep(0.3)
            time.sleep(1.0)
        ok, failed = [load.ok], load.failed
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
