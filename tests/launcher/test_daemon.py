"""`oxwsgi serve --daemon` / `oxwsgi config --daemon`: the app runs in a process group of its
own, under Apache (mod_wsgi's daemon mode) and under nginx (wsgi_daemon_process)."""

import concurrent.futures
import subprocess
from pathlib import Path

import requests

from conftest import VENV, free_port, module_args, run_oxwsgi
from test_serve import assert_clean_stop

APP = """\
import json, os, time

def application(environ, start_response):
    if environ.get("PATH_INFO") == "/sleep":
        time.sleep(0.5)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"group": environ["mod_wsgi.process_group"], "pid": os.getpid(),
                        "multiprocess": environ["wsgi.multiprocess"],
                        "multithread": environ["wsgi.multithread"]}).encode()]
"""


def comm(pid):
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_serve_daemon_runs_the_app_in_a_process_group(serve, workdir):
    (workdir / "app.wsgi").write_text(APP)
    (workdir / "app.wsgi").chmod(0o644)
    s = serve("app.wsgi", *module_args("apache"), "--python-home", VENV, "--daemon",
              "--processes", "2", "--threads", "3")
    err = s.wait_ready()
    assert "workers  2 processes x 3 threads in daemon process group oxwsgi-app" in err, err
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: requests.get(s.url + "/sleep", timeout=30), range(12)))
    assert all(r.status_code == 200 for r in got), [r.status_code for r in got]
    js = [r.json() for r in got]
    assert {j["group"] for j in js} == {"oxwsgi-app"}
    assert (js[0]["multiprocess"], js[0]["multithread"]) == (True, True)
    pids = {j["pid"] for j in js}
    assert len(pids) == 2, pids
    # The daemons, not Apache's children, ran the app (display-name=%{GROUP}).
    assert all(comm(p).startswith("(wsgi:oxwsgi-ap") for p in pids), [comm(p) for p in pids]
    s.observe()
    assert pids <= s.seen, "the daemons are not among the server's processes"
    conf = (Path(s.private_dir) / "httpd.conf").read_text()
    assert "WSGIRestrictEmbedded On" in conf and "WSGIProcessGroup oxwsgi-app" in conf
    assert_clean_stop(s)  # also: no daemon left behind


def test_config_daemon_prints_the_group_and_passes_configtest(workdir):
    (workdir / "app.wsgi").write_text(APP)
    r = run_oxwsgi("config", "app.wsgi", *module_args("apache"), "--python-home", VENV,
                   "--python-path", workdir, "--daemon", "--processes", "3", "--threads", "7", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    want = (f"WSGIDaemonProcess oxwsgi-app processes=3 threads=7 python-home={VENV} "
            f"python-path={workdir} display-name=%{{GROUP}}\nWSGIProcessGroup oxwsgi-app\n")
    assert want in out, out
    assert f"WSGIScriptAlias / {workdir}/app.wsgi" in out
    assert "WSGIPythonHome" not in out and "WSGIRestrictEmbedded" not in out, out
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
        f"{out}")
    t = subprocess.run(["apache2", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert t.returncode == 0, f"{t.stdout}{t.stderr}\n--- config ---\n{conf.read_text()}"
    # The same lines with a group that is not defined fail: the check is real.
    conf.write_text(conf.read_text().replace("WSGIProcessGroup oxwsgi-app", "WSGIProcessGroup nosuch"))
    t = subprocess.run(["apache2", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    assert t.returncode != 0 and "nosuch" in t.stdout + t.stderr


def test_nginx_serve_daemon_runs_the_app_in_a_process_group(serve, workdir):
    (workdir / "app.wsgi").write_text(APP)
    (workdir / "app.wsgi").chmod(0o644)
    s = serve("app.wsgi", *module_args("nginx"), "--python-home", VENV, "--daemon",
              "--processes", "2", "--threads", "3")
    err = s.wait_ready()
    assert "workers  2 processes x 3 threads in daemon process group oxwsgi-app" in err, err
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: requests.get(s.url + "/sleep", timeout=30), range(12)))
    assert all(r.status_code == 200 for r in got), [r.status_code for r in got]
    js = [r.json() for r in got]
    assert {j["group"] for j in js} == {"oxwsgi-app"}
    assert (js[0]["multiprocess"], js[0]["multithread"]) == (True, True)
    pids = {j["pid"] for j in js}
    assert len(pids) == 2, pids
    # The daemons are the keeper's children, not nginx's workers.
    keepers = {int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]) for p in pids}
    assert len(keepers) == 1 and comm(keepers.pop()) == "oxwsgi-keeper"
    conf = (Path(s.private_dir) / "nginx.conf").read_text()
    assert "wsgi_daemon_process oxwsgi-app processes=2 threads=3" in conf and "wsgi_process_group oxwsgi-app;" in conf
    s.observe()
    assert pids <= s.seen, "the daemons are not among the server's processes"
    assert_clean_stop(s)  # also: no daemon left behind


def test_nginx_config_daemon_passes_nginx_t(workdir):
    (workdir / "app.wsgi").write_text(APP)
    r = run_oxwsgi("config", "app.wsgi", *module_args("nginx"), "--python-home", VENV,
                   "--python-path", workdir, "--daemon", "--processes", "3", "--threads", "7", cwd=workdir)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    want = (f"wsgi_daemon_process oxwsgi-app processes=3 threads=7 python_path={workdir};\n"
            "wsgi_process_group oxwsgi-app;\n")
    assert want in out, out
    main = out.split("# main context")[1].split("\n", 1)[1].split("# http { } context:")[0]
    http = out.split("# http { } context:")[1].split("# server { } context:")[0]
    server = out.split("# server { } context:")[1]
    srv = workdir / "srv"
    (srv / "tmp").mkdir(parents=True)
    conf = srv / "nginx.conf"

    def nginx_t(http_part):
        conf.write_text(
            f"pid {srv}/nginx.pid;\nerror_log {srv}/error.log;\n{main}\nevents {{ worker_connections 16; }}\n"
            f"http {{\n    client_body_temp_path {srv}/tmp; proxy_temp_path {srv}/tmp; fastcgi_temp_path {srv}/tmp;\n"
            f"    uwsgi_temp_path {srv}/tmp; scgi_temp_path {srv}/tmp;\n{http_part}\n"
            f"    server {{\n        listen 127.0.0.1:{free_port()};\n{server}\n    }}\n}}\n")
        return subprocess.run(["nginx", "-t", "-p", f"{srv}/", "-e", f"{srv}/error.log", "-c", str(conf)],
                              capture_output=True, text=True, timeout=60)

    t = nginx_t(http)
    assert t.returncode == 0, f"{t.stdout}{t.stderr}\n--- config ---\n{conf.read_text()}"
    # The same lines with a group that is not defined fail: the check is real.
    t = nginx_t(http.replace("wsgi_process_group oxwsgi-app", "wsgi_process_group nosuch"))
    assert t.returncode != 0 and "nosuch" in t.stdout + t.stderr
