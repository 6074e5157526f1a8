"""Daemon mode on nginx, the directives: `wsgi_daemon_process` and `wsgi_process_group`
are parsed and checked by the real `nginx -t`; each mistake fails it with one precise
message naming the file and line (docs/nginx-daemon.md). Workers start Python only when
some application runs embedded."""

import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from harness import paths, procs
from test_configtest import BASE, nginx_t, stage  # noqa: F401 (the fixture)


def emerg_lines(out):
    return [line for line in out.splitlines() if "[emerg]" in line]


def private_venv(d):
    """A virtualenv of the linked Python inside a directory only root can enter."""
    private = d / "private"
    venv = private / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    shutil.copy(paths.VENV / "pyvenv.cfg", venv / "pyvenv.cfg")
    private.chmod(0o700)
    return venv


@pytest.mark.parametrize("http, server, message", [
    ("wsgi_daemon_process site processes=0;", "", 'processes="0" is not a whole number of at least 1'),
    ("wsgi_daemon_process site threads=many;", "", 'threads="many" is not a whole number'),
    ("wsgi_daemon_process site request_timeout=soon;", "", 'request_timeout="soon" is not a time'),
    ("wsgi_daemon_process site memory_limit=lots;", "", 'memory_limit="lots" is not a size'),
    ("wsgi_daemon_process site user=no-such-user-oxwsgi;", "", 'user "no-such-user-oxwsgi" does not exist'),
    ("wsgi_daemon_process site group=no-such-group-oxwsgi;", "", 'group "no-such-group-oxwsgi" does not exist'),
    ("wsgi_daemon_process site python-home={venv};", "", 'nginx spells it "python_home"'),
    ("wsgi_daemon_process site python_home={d};", "", "python_home="),
    ("wsgi_daemon_process site python_path={d}/nowhere;", "", "nowhere is not a directory"),
    ("wsgi_daemon_process site stack_size=524288;", "", '"stack_size" would have no effect'),
    ("wsgi_daemon_process site chroot=/;", "", '"chroot" is not supported by oxwsgi'),
    ("wsgi_daemon_process site frobnicate=1;", "", 'unknown option "frobnicate"'),
    ("wsgi_daemon_process site processes;", "", 'unexpected argument "processes"'),
    ("wsgi_daemon_process site threads=2 threads=3;", "", 'option "threads" is given twice'),
    ("wsgi_daemon_process off;", "", '"off" is not a valid process group name'),
    ("wsgi_daemon_process site; wsgi_daemon_process site threads=2;", "",
     'group "site" is defined twice (first in {d}/nginx.conf:'),
    ("", "location /a {{ wsgi_app {d}/app.wsgi; wsgi_process_group nope; }}",
     'wsgi_process_group "nope" in {d}/nginx.conf:'),
    ("", "location /a {{ wsgi_app {d}/app.wsgi; wsgi_process_group '%{{GLOBAL}}'; }}", "mod_wsgi's spelling"),
    ("", "location /a {{ wsgi_app {d}/app.wsgi; wsgi_process_group $host; }}", "variables are not supported"),
    ("wsgi_daemon_process site;",
     "location /a {{ wsgi_app {d}/app.wsgi; wsgi_process_group site; wsgi_process_group site; }}",
     '"wsgi_process_group" directive is duplicate'),
    ("", "wsgi_daemon_process site;", '"wsgi_daemon_process" directive is not allowed here'),
    ("wsgi_daemon_process;", "", 'invalid number of arguments in "wsgi_daemon_process"'),
])
def test_each_mistake_fails_nginx_t_with_one_message(stage, http, server, message):
    rc, out = nginx_t(stage, http=http, server=server)
    assert rc != 0, out
    assert message.format(d=stage) in out, out
    assert len(emerg_lines(out)) == 1, out
    assert "test is successful" not in out


def test_mistake_names_file_and_line(stage):
    rc, out = nginx_t(stage, http="wsgi_daemon_process site processes=0;")
    assert rc != 0
    # nginx's own position suffix: "in /path/nginx.conf:N"
    assert re.search(rf'"wsgi_daemon_process": group "site": .* in {re.escape(str(stage))}/nginx.conf:\d+', out), out


def test_python_home_the_group_user_cannot_read_fails(stage):
    venv = private_venv(stage)
    rc, out = nginx_t(stage, http=f"wsgi_daemon_process site user=nobody python_home={venv};")
    assert rc != 0, out
    assert "is not accessible to nobody" in out, out
    # the same directory is fine for root's own group: the check is per account
    rc, out = nginx_t(stage, http=f"wsgi_daemon_process site user=root python_home={venv};")
    assert rc == 0 and "test is successful" in out, out


def test_global_python_home_is_checked_for_the_group_user(stage):
    venv = private_venv(stage)
    rc, out = nginx_t(stage, http=f"wsgi_python_home {venv}; wsgi_daemon_process site user=nobody;")
    assert rc != 0, out
    assert "is not accessible to nobody" in out, out


def test_valid_daemon_configuration_passes(stage):
    rc, out = nginx_t(stage, http="""
    wsgi_daemon_process site processes=2 threads=15 user=nobody group=nogroup python_home={venv}
        python_path={d}:{d}/tmp maximum_requests=1000 request_timeout=30s graceful_timeout=15s
        inactivity_timeout=5m queue_timeout=2s shutdown_timeout=5s deadlock_timeout=300
        connect_timeout=15s socket_timeout=1m listen_backlog=200 memory_limit=1g umask=0007
        display_name=site-daemon lang=C.UTF-8 cpu_time_limit=1h restart_interval=1d;
    wsgi_daemon_process other;
    wsgi_process_group site;""", server="""
        location /a {{ wsgi_app {d}/app.wsgi; }}
        location /b {{ wsgi_app {d}/app.wsgi; wsgi_process_group other; }}
        location /c {{ wsgi_app {d}/app.wsgi; wsgi_process_group off; }}""")
    assert rc == 0, out
    assert "test is successful" in out and not emerg_lines(out)
    # nginx -t starts nothing: no socket, no keeper
    assert not list(stage.glob("oxwsgi.*.sock"))


def test_process_group_off_alone_is_embedded_and_valid(stage):
    rc, out = nginx_t(stage, server="location /a {{ wsgi_app {d}/app.wsgi; wsgi_process_group off; }}")
    assert rc == 0, out
    assert "test is successful" in out


def run_nginx(d, http, server):
    """Start nginx on `d`'s configuration; (process, port)."""
    port = procs.free_port()
    conf = d / "nginx.conf"
    conf.write_text(BASE.replace("listen 127.0.0.1:1;", f"listen 127.0.0.1:{port};").format(
        d=d, main="master_process on; worker_processes 1;",
        http=http.format(d=d, venv=paths.VENV), server=server.format(d=d)))
    p = subprocess.Popen([paths.NGINX_BIN, "-p", str(d), "-e", str(d / "error.log"), "-c", str(conf)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p, port


@pytest.mark.parametrize("group, python_in_workers", [("g", False), ("off", True)])
def test_workers_start_python_only_for_embedded_apps(stage, group, python_in_workers):
    marks = stage / "marks"
    marks.write_text("")
    marks.chmod(0o666)
    (stage / "mark.py").write_text(f"import os\nopen({str(marks)!r}, 'a').write('%d\\n' % os.getpid())\n")
    p, port = run_nginx(stage, http="""
    wsgi_python_home {venv};
    wsgi_import {d}/mark.py;
    wsgi_daemon_process g processes=1 threads=2;""",
                        server=f"location /app/ {{{{ wsgi_app {{d}}/app.wsgi; wsgi_process_group {group}; }}}}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.get(f"http://127.0.0.1:{port}/app/", timeout=5)
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, (stage / "error.log").read_text()[-2000:]
            time.sleep(0.1)
        assert r.text == "ok"
        # wsgi_import runs where Python starts: in the workers only if an app runs there
        assert bool(marks.read_text().strip()) == python_in_workers, marks.read_text()
    finally:
        p.send_signal(signal.SIGQUIT)
        p.wait(30)
