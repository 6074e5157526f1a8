"""A worker's exit runs Python's exit work (atexit, logging.shutdown, weakref.finalize) on
reload and on stop, and a non-daemon thread that never ends does not keep a worker alive
past the limit (tests/harness/exit_checks.py)."""

import os
import signal
import time

from harness import exit_checks, servers


def test_reload_runs_exit_handlers():
    srv = servers.create("nginx")
    srv.start()
    try:
        pids = exit_checks.worker_pids(srv)
        hung = exit_checks.hang_pid(srv)
        started = time.monotonic()
        os.kill(srv.proc.pid, signal.SIGHUP)
        exit_checks.wait_exited(pids | {hung})
        print(f"old workers gone {time.monotonic() - started:.1f} s after the reload")
        exit_checks.assert_exit_work_ran(srv, pids | {hung})
        exit_checks.assert_thread_was_reported(srv)
        assert srv.health()
    finally:
        srv.stop()
        srv.cleanup()


def test_stop_runs_exit_handlers():
    srv = servers.create("nginx")
    srv.start()
    try:
        pids = exit_checks.worker_pids(srv)
    finally:
        srv.stop()
    try:
        exit_checks.wait_exited(pids)
        exit_checks.assert_exit_work_ran(srv, pids)
    finally:
        srv.cleanup()
