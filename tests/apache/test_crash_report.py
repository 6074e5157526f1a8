"""A child that dies of a fault leaves its stack in the error log (src/ffi/crash_report.rs)
and Apache goes on serving: an application that dereferences NULL through ctypes kills
its child, the report names the signal and shows the faulting thread's frames down to
CPython, and the harness's crash check fails such a crash (only httpd's own race at stop
is excused, tests/harness/crash.py)."""

import requests

from harness import crash
from harness.apache import ApacheServer


class CrashApache(ApacheServer):
    def __init__(self, mpm):
        super().__init__(f"crash-{mpm}", wsgi="oxwsgi", mpm=mpm)

    def config_text(self):
        (self.stage.root / "apps" / "crash.wsgi").write_text(crash.CRASH_APP)
        return super().config_text() + f"\nWSGIScriptAlias /crash {self.stage.root}/apps/crash.wsgi\n"


def test_a_crashing_application_leaves_a_report_and_the_server_keeps_serving():
    srv = CrashApache("event")
    srv.start()
    try:
        crash.assert_crash_reported(srv, "/crash/", "mod_oxwsgi.so", r"child pid \d+ exit signal Segmentation fault")
        # The other child and the replacement go on serving.
        for _ in range(6):
            assert requests.get(srv.url("/health/"), timeout=20).status_code == 200
    finally:
        srv.stop()
        srv.cleanup()


# The report of the one crash the harness excuses, as a child on this machine wrote it
# (event MPM stopped with SIGTERM while a worker was finishing a connection; the test
# suite's tests/apache/test_interpreters.py server, about 1 stop in 50).
HTTPD_RACE = """\
oxwsgi crash report: pid 20944 thread 20944: fatal signal 11 (SIGSEGV), fault address 0x7f3e214590b8; stack of the faulting thread, innermost first:
/lib/x86_64-linux-gnu/libc.so.6(+0x3c050)[0x7f3e21e66050]
/lib/x86_64-linux-gnu/libapr-1.so.0(apr_os_sock_get+0x0)[0x7f3e22034180]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x606c)[0x7f3e21d7306c]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x7507)[0x7f3e21d74507]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x7da7)[0x7f3e21d74da7]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x804f)[0x7f3e21d7504f]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x80e9)[0x7f3e21d750e9]
/usr/lib/apache2/modules/mod_mpm_event.so(+0x90ec)[0x7f3e21d760ec]
/usr/sbin/apache2(ap_run_mpm+0x50)[0x55cc30e1d850]
/usr/sbin/apache2(main+0xab2)[0x55cc30e151c2]
/lib/x86_64-linux-gnu/libc.so.6(+0x2724a)[0x7f3e21e5124a]
/lib/x86_64-linux-gnu/libc.so.6(__libc_start_main+0x85)[0x7f3e21e51305]
/usr/sbin/apache2(_start+0x21)[0x55cc30e152c1]
oxwsgi crash report: pid 20944: end of stack
[Wed Dec 02 03:39:09.570781 2026] [core:notice] [pid 20943:tid 20943] AH00051: child pid 20944 exit signal Segmentation fault (11), possible coredump in /tmp/cores
"""


def test_only_httpds_own_race_at_stop_is_excused():
    bad = [line for line in HTTPD_RACE.splitlines() if "fatal signal" in line or "exit signal" in line]
    lines, why = crash.excused(HTTPD_RACE, bad)
    assert lines == bad and "close_worker_sockets" in why
    # The same crash with one frame of oxwsgi (or CPython) on the stack is not excused.
    for library in ("/opt/mod_oxwsgi.so(+0x1234)[0x7ff20d000000]",
                    "/lib/x86_64-linux-gnu/libpython3.11.so.1.0(+0x99)[0x7ff20c000099]"):
        ours = HTTPD_RACE.replace("/usr/sbin/apache2(ap_run_mpm", library + "\n/usr/sbin/apache2(ap_run_mpm")
        assert crash.excused(ours, bad) == ([], "")
    # A crash of another kind in httpd's code is not excused either.
    other = HTTPD_RACE.replace("apr_os_sock_get+0x0", "apr_pool_destroy+0x10")
    assert crash.excused(other, bad) == ([], "")
