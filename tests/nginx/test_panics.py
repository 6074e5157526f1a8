"""A panic inside the module fails closed. The test-only variable OXWSGI_TEST_PANIC
(src/nginx/testhook.rs) injects one: in a configuration check `nginx -t` must fail with a
message; in a task completion the request must end with 500 (head not sent yet) or a
closed connection (head sent), never hang; the worker goes on serving."""

import os
import subprocess
import time

import pytest
import requests

from custom import CustomNginx
from harness import paths
from harness.rawhttp import build_request

STREAM_APP = """
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    for i in range(64):
        yield b'x' * 65536
"""

LOCATIONS = """
        location /slow {{ wsgi_app {d}/slow.wsgi; }}
        location /stream {{ wsgi_app {d}/stream.wsgi; }}
"""


class PanicNginx(CustomNginx):
    def __init__(self, name, point):
        super().__init__(name, locations=LOCATIONS)
        self.point = point

    def config_text(self):
        text = super().config_text()
        (self.extra / "stream.wsgi").write_text(STREAM_APP)
        # nginx passes environment variables to workers only through `env`.
        return text.replace("daemon off;\n", f"daemon off;\nenv OXWSGI_TEST_PANIC={self.point};\n", 1)

    def wait_ready(self, timeout=40.0):
        # Every WSGI request of this server may panic: up means it answers at all.
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(self.url("/health/"), timeout=5)
                return
            except requests.RequestException:
                if time.monotonic() > deadline or not self.master_alive():
                    raise
                time.sleep(0.1)


@pytest.fixture
def panicking():
    servers = []

    def start(point):
        s = PanicNginx(f"nginx-panic-{point}", point)
        servers.append(s)
        s.start()
        return s
    yield start
    for s in servers:
        s.stop()
        s.check_log()
        s.cleanup()


def test_panic_in_configuration_check_fails_nginx_t(tmp_path):
    tmp_path.chmod(0o755)
    so = paths.MODULE_DIR / "ngx_http_oxwsgi_module.so"
    (tmp_path / "app.wsgi").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    conf = tmp_path / "nginx.conf"
    conf.write_text(f"""daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
load_module {so};
events {{ worker_connections 64; }}
http {{
    server {{ listen 127.0.0.1:1; location /a {{ wsgi_app {tmp_path}/app.wsgi; }} }}
}}
""")
    cmd = [paths.NGINX_BIN, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(conf)]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin")}
    ok = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    r = subprocess.run(cmd, env={**env, "OXWSGI_TEST_PANIC": "config-check"},
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "internal error (panic) in the configuration check" in out, out
    assert "injected panic at config-check" in out, out


def test_panic_in_task_completion_answers_500(panicking):
    s = panicking("task-done")
    for _ in range(3):
        r = requests.get(s.url("/slow/x"), timeout=10)
        assert r.status_code == 500
    s.wait_for_log(r"internal error \(panic\) in task completion: injected panic at task-done")


def test_panic_after_the_head_closes_the_connection(panicking):
    s = panicking("task-done-streaming")
    with s.raw(timeout=10) as c:
        c.send(build_request("GET", "/stream/"))
        resp = c.read_response()
        assert resp.status == 200
        assert resp.framing == "chunked"
        assert not resp.complete, "the body must be visibly truncated"
        assert len(resp.body) < 64 * 65536
    s.wait_for_log(r"internal error \(panic\) in task completion: injected panic at task-done-streaming")
