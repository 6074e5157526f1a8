"""`oxwsgi config`: the printed configuration has the expected directives, and pasted into a
minimal httpd.conf / nginx.conf it passes the server's own configuration test."""

import subprocess

import pytest

from conftest import MODULE_DIR, VENV, free_port, module_args, run_oxwsgi


@pytest.fixture
def project(flask_project):
    (flask_project / "mymod.py").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'']\n")
    return flask_project


def config(project, *args):
    r = run_oxwsgi("config", *args, cwd=project)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_apache_directives(project):
    out = config(project, "app.wsgi", *module_args("apache"), "--python-home", VENV,
                 "--python-path", project / "state", "--url-alias", "/static", "static",
                 "--callable", "app", "--mount", "/shop/", "--reload-on-change")
    for want in [
        f"LoadModule oxwsgi_module {MODULE_DIR}/mod_oxwsgi.so",
        f"WSGIPythonHome {VENV}",
        f"WSGIPythonPath {project}/state:{project}",
        f"WSGIScriptAlias /shop {project}/app.wsgi",
        "WSGICallableObject app",
        "WSGIScriptReloading On",
        f"Alias /static {project}/static",
        f"<Directory {project}/static>",
        "Require all granted",
    ]:
        assert want in out, f"{want!r} missing from:\n{out}"
    assert "Listen" not in out, "the pasteable part must not carry the private server settings"


def test_nginx_directives(project):
    out = config(project, "app.wsgi", *module_args("nginx"), "--python-home", VENV,
                 "--url-alias", "/static", "static", "--callable", "app", "--max-in-flight", "9",
                 "--threads", "7")
    for want in [
        f"load_module {MODULE_DIR}/ngx_http_oxwsgi_module.so;",
        "thread_pool default threads=7;",
        f"wsgi_python_home {VENV};",
        f"wsgi_python_path {project};",
        "wsgi_max_in_flight 9;",
        f"location /static/ {{\n    alias {project}/static/;\n}}",
        f"location / {{\n    wsgi_app {project}/app.wsgi callable=app;\n}}",
        "# main context", "# http { } context:", "# server { } context:",
    ]:
        assert want in out, f"{want!r} missing from:\n{out}"


def test_full_config():
    r = run_oxwsgi("config", "--full", *module_args("apache"), "--processes", "3", "--threads", "4")
    assert r.returncode == 0, r.stderr
    for want in ["ServerRoot", "Listen 127.0.0.1:8000", "LoadModule mpm_event_module", "StartServers 3",
                 "ThreadsPerChild 4", "WSGIScriptAlias /", "oxwsgi demo >"]:
        assert want in r.stdout, f"{want!r} missing"
    r = run_oxwsgi("config", "--full", *module_args("nginx"), "--processes", "3", "--access-log")
    assert r.returncode == 0, r.stderr
    for want in ["daemon off;", "worker_processes 3;", "client_body_temp_path", "access_log /tmp/"]:
        assert want in r.stdout, f"{want!r} missing"


def test_module_callable_prints_shim(project):
    out = config(project, "mymod:application", *module_args("apache"))
    assert "# | _obj = importlib.import_module('mymod')" in out
    assert f"WSGIScriptAlias / {project}/mymod.oxwsgi.wsgi" in out


def test_apache_snippet_passes_configtest(project, workdir):
    out = config(project, "app.wsgi", *module_args("apache"), "--python-home", VENV,
                 "--url-alias", "/static", "static", "--reload-on-change")
    srv = workdir / "srv"
    srv.mkdir()
    conf = srv / "httpd.conf"
    conf.write_text(
        f"ServerRoot {srv}\nServerName 127.0.0.1\nListen 127.0.0.1:{free_port()}\n"
        f"PidFile {srv}/httpd.pid\nDefaultRuntimeDir {srv}\nErrorLog {srv}/error.log\n"
        "User www-data\nGroup www-data\n"
        "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n"
        "LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n"
        "LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so\n"
        "LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so\n"
        f"{out}")
    r = subprocess.run(["apache2", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n--- config ---\n{conf.read_text()}"


def test_nginx_snippet_passes_configtest(project, workdir):
    out = config(project, "app.wsgi", *module_args("nginx"), "--python-home", VENV,
                 "--url-alias", "/static", "static", "--max-in-flight", "5")
    parts = {"main": "", "http": "", "server": ""}
    cur = None
    for line in out.splitlines():
        if line.startswith("# main context"):
            cur = "main"
        elif line.startswith("# http"):
            cur = "http"
        elif line.startswith("# server"):
            cur = "server"
        elif cur:
            parts[cur] += line + "\n"
    srv = workdir / "srv"
    srv.mkdir()
    conf = srv / "nginx.conf"
    conf.write_text(
        f"{parts['main']}pid {srv}/nginx.pid;\nerror_log {srv}/error.log;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n client_body_temp_path {srv}/cb; proxy_temp_path {srv}/p; fastcgi_temp_path {srv}/f;\n"
        f" uwsgi_temp_path {srv}/u; scgi_temp_path {srv}/s; access_log off;\n{parts['http']}\n"
        f" server {{\n  listen 127.0.0.1:{free_port()};\n{parts['server']}\n }}\n}}\n")
    r = subprocess.run(["nginx", "-t", "-p", f"{srv}/", "-e", f"{srv}/error.log", "-c", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{r.stdout}{r.stderr}\n--- config ---\n{conf.read_text()}"
