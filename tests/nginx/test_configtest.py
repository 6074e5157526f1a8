"""Mistakes in the nginx directives fail `nginx -t` with one precise message; the
directives that work are accepted, and wsgi_param / wsgi_pass_authorization behave."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from custom import CustomNginx
from harness import paths

BASE = """\
daemon off;
{main}
pid {d}/nginx.pid;
error_log {d}/error.log;
load_module {d}/ngx_http_oxwsgi_module.so;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
    uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp; access_log off;
    {http}
    server {{
        listen 127.0.0.1:1;
        {server}
    }}
}}
"""


@pytest.fixture
def stage():
    d = Path(tempfile.mkdtemp(prefix="oxwsgi-ngx-configtest-"))
    d.chmod(0o755)
    so = paths.MODULE_DIR / "ngx_http_oxwsgi_module.so"
    if not so.exists():
        pytest.fail(f"{so} missing: run `make nginx` first")
    shutil.copy(so, d / "ngx_http_oxwsgi_module.so")
    (d / "app.wsgi").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    (d / "tmp").mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def nginx_t(d, http="", server="", main=""):
    conf = d / "nginx.conf"
    conf.write_text(BASE.format(d=d, main=main, http=http.format(d=d, venv=paths.VENV),
                                server=server.format(d=d, venv=paths.VENV)))
    r = subprocess.run([paths.NGINX_BIN, "-t", "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_valid_configuration_passes(stage):
    rc, out = nginx_t(stage, main="thread_pool default threads=4;", http="""
    wsgi_python_home {venv};
    wsgi_python_path {d} {d}/tmp;
    wsgi_import {d}/app.wsgi;
    wsgi_max_in_flight 64;
    wsgi_pass_authorization on;
    wsgi_param GLOBAL_PARAM $host;""", server="""
        location /app {{ wsgi_app {d}/app.wsgi callable=application; wsgi_param X $request_id if_not_empty; }}
        location /other {{ wsgi_app {d}/app.wsgi; wsgi_thread_pool default; }}""")
    assert rc == 0, out
    assert "test is successful" in out


@pytest.mark.parametrize("http, server, message", [
    ("", "location /a {{ wsgi_app {d}/missing.wsgi; }}", "does not exist"),
    ("", "location /a {{ wsgi_app {d}/app.wsgi bogus=1; }}", "bogus"),
    ("", "location /a {{ wsgi_app {d}/app.wsgi callable=not-an-identifier; }}", "identifier"),
    ("wsgi_python_home {d}/nowhere;", "", "is not a directory"),
    ("wsgi_python_home {d};", "", "is neither a virtualenv"),
    ("wsgi_python_path {d}/nowhere;", "", "nowhere"),
    ("wsgi_max_in_flight zero;", "", "wsgi_max_in_flight"),
    ("", "location /a {{ wsgi_app {d}/app.wsgi; wsgi_thread_pool nope; }}", "unknown thread pool \"nope\""),
    ("", "location /a {{ wsgi_app {d}/app.wsgi; wsgi_pass_authorization maybe; }}", "wsgi_pass_authorization"),
])
def test_mistakes_fail_nginx_t(stage, http, server, message):
    rc, out = nginx_t(stage, http=http, server=server)
    assert rc != 0, out
    assert message in out, out
    assert "test is successful" not in out


def test_virtualenv_of_another_python_version_is_refused(stage):
    venv = stage / "venv312"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/local/bin\nversion = 3.12.1\n")
    rc, out = nginx_t(stage, http=f"wsgi_python_home {venv};")
    assert rc != 0
    assert "3.12.1" in out and "3.11" in out, out


LOCATIONS = """
        location /params {{
            wsgi_app {d}/params.wsgi;
            wsgi_param OXWSGI_PARAM fixed-value;
            wsgi_param OXWSGI_VAR $request_method-$arg_x;
        }}
        location /auth {{
            wsgi_app {d}/params.wsgi;
            wsgi_pass_authorization on;
        }}
        location /noauth {{
            wsgi_app {d}/params.wsgi;
        }}
"""


def test_params_and_authorization_over_http():
    s = CustomNginx("nginx-params", locations=LOCATIONS)
    s.start()
    try:
        j = requests.get(s.url("/params/sub?x=42"), timeout=10).json()
        assert j["OXWSGI_PARAM"] == "fixed-value"
        assert j["OXWSGI_VAR"] == "GET-42"
        assert j["SCRIPT_NAME"] == "/params" and j["PATH_INFO"] == "/sub"
        hdr = {"Authorization": "Bearer t0ken"}
        assert requests.get(s.url("/auth/"), headers=hdr, timeout=10).json()["HTTP_AUTHORIZATION"] == "Bearer t0ken"
        assert requests.get(s.url("/noauth/"), headers=hdr, timeout=10).json()["HTTP_AUTHORIZATION"] is None
    finally:
        s.stop()
        s.check_log()
        s.cleanup()
