"""A child's (or daemon process's) exit runs Python's exit work (atexit, logging.shutdown, weakref.finalize) on
graceful restart and on stop, and a non-daemon thread that never ends does not keep a child
alive past the limit (tests/harness/exit_checks.py)."""

import subprocess
import time

import pytest

from harness import exit_checks, paths, servers


# apache-daemon: every mount in one daemon process group; the daemons retire on a graceful
# restart and run the same exit work.
@pytest.mark.parametrize("flavour", ["apache", "apache-daemon"])
def test_graceful_restart_runs_exit_handlers(flavour):
    srv = servers.create(flavour)
    srv.start()
    try:
        pids = exit_checks.worker_pids(srv)
        hung = exit_checks.hang_pid(srv)
        started = time.monotonic()
        r = subprocess.run([paths.APACHE_BIN, "-f", str(srv.conf), "-k", "graceful"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        exit_checks.wait_exited(pids | {hung})
        print(f"old children gone {time.monotonic() - started:.1f} s after the graceful restart")
        exit_checks.assert_exit_work_ran(srv, pids | {hung})
        exit_checks.assert_thread_was_reported(srv)
        assert srv.health()
    finally:
        srv.stop()
        srv.cleanup()


@pytest.mark.parametrize("flavour", ["apache", "apache-daemon"])
def test_stop_runs_exit_handlers(flavour):
    srv = servers.create(flavour)
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
