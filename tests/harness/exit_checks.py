"""Shared checks that a worker runs Python's exit work when it exits (atexit callbacks,
logging.shutdown(), weakref.finalize), and that a never-ending non-daemon thread does not
keep it alive. The app is tests/apps/exiting.wsgi, mounted at /exit."""

import time

import requests

from . import procs

# Workers wait at most 3 s for exit handlers (core::exit::DEFAULT_LIMIT); then slack.
EXIT_WITHIN = 12.0


def worker_pids(srv, n=20):
    """Pids of the workers that served /exit/pid (each loaded the app)."""
    pids = set()
    for _ in range(n):
        r = requests.get(srv.url("/exit/pid"), headers={"Connection": "close"}, timeout=10)
        assert r.status_code == 200, r.text
        pids.add(r.json()["pid"])
    return pids


def hang_pid(srv):
    r = requests.get(srv.url("/exit/hang"), headers={"Connection": "close"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["pid"]


def wait_exited(pids, timeout=EXIT_WITHIN):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if procs.alive(p)]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"workers still alive {timeout}s after they were told to exit: {alive}")


def assert_exit_work_ran(srv, pids):
    """Every worker in `pids` wrote the markers of its three kinds of exit work."""
    missing = []
    for pid in pids:
        for what in ("atexit", "finalize", "logging"):
            if not (srv.stage.state / f"exit-{pid}.{what}").exists():
                missing.append(f"{pid}.{what}")
    assert not missing, f"exit work that did not run: {missing}\n{srv.log_tail(30)}"


def assert_thread_was_reported(srv):
    text = srv.error_log()
    assert "non-daemon threads were still running: never-ending-worker-thread" in text, srv.log_tail(30)
