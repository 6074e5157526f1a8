"""An nginx worker that dies of a fault leaves its stack in the error log
(src/ffi/crash_report.rs) and nginx goes on serving with a new worker."""

import requests

from custom import CustomNginx
from harness import crash

CRASH_APP = """
import ctypes
def application(environ, start_response):
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    start_response('200 OK', [])
    return [b'not reached']
"""


class CrashNginx(CustomNginx):
    def __init__(self):
        super().__init__("crash-nginx", locations="        location /crash {{ wsgi_app {d}/crash.wsgi; }}\n")

    def config_text(self):
        text = super().config_text()
        (self.extra / "crash.wsgi").write_text(CRASH_APP)
        return text


def test_a_crashing_application_leaves_a_report_and_nginx_keeps_serving():
    srv = CrashNginx()
    srv.start()
    try:
        try:
            requests.get(srv.url("/crash"), timeout=20)
        except requests.ConnectionError:
            pass  # the worker died with the connection
        text = srv.wait_for_log(r"oxwsgi crash report: pid \d+: end of stack", timeout=20)
        srv.wait_for_log(r"exited on signal 11", timeout=20)
        found = crash.reports(text)
        assert len(found) == 1, text[-3000:]
        (pid, (signal, frames)), = found.items()
        assert signal == "SIGSEGV"
        assert any("libpython3.11" in f for f in frames), frames
        assert any("ngx_http_oxwsgi_module.so" in f for f in frames), frames
        for _ in range(6):
            assert requests.get(srv.url("/health/"), timeout=20).status_code == 200
    finally:
        srv.stop()
        srv.cleanup()
