"""`oxwsgi serve`: real servers come up, answer, and leave nothing behind."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import OXWSGI, VENV, module_args, port_open, run_oxwsgi, with_cmdline


def assert_clean_stop(s, sig=signal.SIGINT):
    rc = s.stop(sig)
    err = s.stderr()
    assert rc == 0, f"oxwsgi exited {rc}:\n{err}"
    assert "no server process left" in err, err
    assert not s.leftovers(), f"server processes left behind: {s.leftovers()}\n{err}"
    assert not port_open(s.port), "something still listens on the port"
    assert s.private_dir and not os.path.exists(s.private_dir), "private dir not removed"
    assert "Traceback" not in err


def test_demo_app(serve, server):
    """The README's command: no app argument serves the built-in demo."""
    s = serve(*module_args(server))
    err = s.wait_ready()
    assert f"serving  http://127.0.0.1:{s.port}/" in err
    assert "logs     /tmp/oxwsgi-serve-" in err
    assert "waiting for GET / to answer" in err
    r = requests.get(s.url + "/", timeout=10)
    assert r.status_code == 200
    assert "Hello from oxwsgi" in r.text
    assert ("nginx" if server == "nginx" else "Apache") in r.text
    assert requests.get(s.url + "/health", timeout=10).text == "ok\n"
    assert len(s.observe()) >= 2, "expected a master and at least one worker"
    assert_clean_stop(s)


def test_flask_with_static_url_alias(serve, server, flask_project):
    """Flask app; --url-alias files come from the web server itself, never from Python."""
    s = serve("app.wsgi", *module_args(server), "--python-home", VENV,
              "--url-alias", "/static", "./static", "--access-log", "--threads", "3")
    s.wait_ready()
    r = requests.get(s.url + "/hello", timeout=10)
    assert r.status_code == 200 and r.text == "python handled /hello\n"
    r = requests.get(s.url + "/static/style.css", timeout=10)
    assert r.status_code == 200, r.text
    assert r.text == "body { color: rebeccapurple }\n", (
        f"static file not served by {server} (Alias must win over the WSGI mount, as in mod_wsgi)")
    assert "ETag" in r.headers and "Last-Modified" in r.headers
    assert r.headers["Content-Type"].startswith("text/css")
    time.sleep(0.3)
    handled = (flask_project / "state" / "paths.log").read_text().split()
    assert "/hello" in handled
    assert "/static/style.css" not in handled
    # The access log is streamed to the terminal.
    deadline = time.monotonic() + 5
    while "/static/style.css" not in s.stdout() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "/static/style.css" in s.stdout()
    assert_clean_stop(s)


def test_sigterm_stops_everything(serve, server):
    s = serve(*module_args(server), "--processes", "2")
    s.wait_ready()
    assert requests.get(s.url + "/", timeout=10).status_code == 200
    assert len(s.observe()) >= 3, "expected a master and two workers"
    assert_clean_stop(s, signal.SIGTERM)


def test_module_callable_factory(serve, server, workdir):
    (workdir / "myproj.py").write_text(
        "def create_app():\n"
        "    def app(environ, start_response):\n"
        "        start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "        return [b'factory ' + environ['SCRIPT_NAME'].encode() + b'|' + environ['PATH_INFO'].encode()]\n"
        "    return app\n")
    (workdir / "myproj.py").chmod(0o644)
    s = serve("myproj:create_app()", *module_args(server), "--mount", "/app", cwd=workdir)
    s.wait_ready()
    r = requests.get(s.url + "/app/x/y", timeout=10)
    assert r.text == "factory /app|/x/y"
    assert_clean_stop(s)


def test_script_importing_its_package_from_cwd(serve, server, workdir):
    """Django layout: `cd project && oxwsgi serve mysite/wsgi.py` imports mysite.settings."""
    pkg = workdir / "mysite"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text("GREETING = 'from mysite.settings'\n")
    (pkg / "wsgi.py").write_text(
        "import mysite.settings\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [mysite.settings.GREETING.encode()]\n")
    subprocess.run(["chmod", "-R", "a+rX", str(workdir)], check=True)
    s = serve("mysite/wsgi.py", *module_args(server), cwd=workdir)
    s.wait_ready()
    assert requests.get(s.url + "/", timeout=10).text == "from mysite.settings"
    assert_clean_stop(s)


def test_reload_on_change(serve, server, workdir):
    mod = workdir / "greeting.py"
    mod.write_text("WORD = 'one'\n")
    (workdir / "app.wsgi").write_text(
        "import greeting\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [greeting.WORD.encode()]\n")
    subprocess.run(["chmod", "-R", "a+rX", str(workdir)], check=True)
    s = serve("app.wsgi", *module_args(server), "--reload-on-change")
    s.wait_ready()
    assert requests.get(s.url + "/", timeout=10).text == "one"
    time.sleep(1.1)  # a different mtime second
    mod.write_text("WORD = 'two'\n")
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(s.url + "/", timeout=10).text
        if text == "two":
            break
        time.sleep(0.2)
    assert text == "two", s.stderr()
    assert "greeting.py changed: restarting the workers" in s.stderr()
    assert_clean_stop(s)


def test_app_that_fails_to_import(server, workdir):
    (workdir / "broken.wsgi").write_text("import no_such_module_for_oxwsgi_test\n")
    (workdir / "broken.wsgi").chmod(0o644)
    r = run_oxwsgi("serve", "broken.wsgi", *module_args(server), "--port", str(_free()), cwd=workdir)
    assert r.returncode == 1, r.stderr
    assert "the app failed to load" in r.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_for_oxwsgi_test'" in r.stderr
    assert 'File "' in r.stderr and "broken.wsgi" in r.stderr  # the worker's traceback
    assert "no server process left" in r.stderr
    kept = re.findall(r"kept the server directory (/tmp/oxwsgi-serve-\w+)", r.stderr)
    assert kept and not with_cmdline(kept[0])
    subprocess.run(["rm", "-rf", kept[0]])


def test_app_raising_at_import_is_reported_by_its_message_id(server, workdir):
    """The module tags the failed load with OXW1001; the launcher recognises the failed start by
    that id alone (it no longer knows the module's wording) and shows the worker's traceback."""
    script = workdir / "raising.wsgi"
    script.write_text("raise RuntimeError('raised at import by the oxwsgi launcher test')\n")
    script.chmod(0o644)
    r = run_oxwsgi("serve", "raising.wsgi", *module_args(server), "--port", str(_free()), cwd=workdir)
    assert r.returncode == 1, r.stderr
    assert "error: the app failed to load (OXW1001): GET / answered" in r.stderr, r.stderr
    assert "RuntimeError: raised at import by the oxwsgi launcher test" in r.stderr, r.stderr
    assert 'File "' in r.stderr and "raising.wsgi" in r.stderr
    assert "no server process left" in r.stderr
    kept = re.findall(r"kept the server directory (/tmp/oxwsgi-serve-\w+)", r.stderr)
    assert kept and not with_cmdline(kept[0])
    # The module's own log line carries the id, first in its part of the line.
    log = open(f"{kept[0]}/logs/error.log").read()
    subprocess.run(["rm", "-rf", kept[0]])
    assert f"OXW1001: {script}: failed to load the WSGI script" in log, log


def test_python_failing_to_start_is_reported_by_its_message_id(server, workdir):
    """A python-home that passes the checks (a prefix with an os.py) but cannot start Python:
    the workers log OXW1002, and the launcher says so instead of calling the app ready."""
    home = workdir / "prefix"
    (home / "lib" / "python3.11").mkdir(parents=True)
    (home / "lib" / "python3.11" / "os.py").write_text("")
    subprocess.run(["chmod", "-R", "a+rX", str(home)], check=True)
    r = run_oxwsgi("serve", *module_args(server), "--python-home", home, "--port", str(_free()), cwd=workdir)
    assert r.returncode == 1, r.stderr
    assert "Python failed to start in" in r.stderr and "(OXW1002)" in r.stderr, r.stderr
    assert "ready in" not in r.stderr
    assert "no server process left" in r.stderr
    kept = re.findall(r"kept the server directory (/tmp/oxwsgi-serve-\w+)", r.stderr)
    assert kept and not with_cmdline(kept[0])
    subprocess.run(["rm", "-rf", kept[0]])


def test_the_old_wording_without_an_id_is_not_a_failed_start(serve, server, workdir):
    """An app answering 500 and logging the words the launcher used to grep for is served
    (with a warning): only the module's message id means the app failed to load."""
    (workdir / "app.wsgi").write_text(
        "def application(environ, start_response):\n"
        "    print('failed to load the WSGI script (said by the app)', file=environ['wsgi.errors'])\n"
        "    start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])\n"
        "    return [b'deliberate 500']\n")
    (workdir / "app.wsgi").chmod(0o644)
    s = serve("app.wsgi", *module_args(server))
    err = s.wait_ready()
    assert "warning: the app answered with a server error" in err, err
    assert "failed to load (OXW" not in err
    r = requests.get(s.url + "/", timeout=10)
    assert r.status_code == 500 and r.text == "deliberate 500"
    assert_clean_stop(s)


def _free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use(server):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_oxwsgi("serve", *module_args(server), "--port", str(port))
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
    assert "Traceback" not in r.stderr and "panicked" not in r.stderr


def test_missing_app_file(workdir):
    r = run_oxwsgi("serve", "nope.wsgi", "--port", "0", cwd=workdir)
    assert r.returncode != 0
    assert f"app file {workdir}/nope.wsgi does not exist" in r.stderr
    assert "panicked" not in r.stderr


def test_missing_server_binary():
    r = run_oxwsgi("serve", "--server", "nginx", env={"OXWSGI_NGINX_BIN": "/nonexistent/nginx"})
    assert r.returncode == 1
    assert "apt-get install nginx" in r.stderr
    r = run_oxwsgi("serve", "--server", "apache", env={"OXWSGI_APACHE_BIN": "/nonexistent/apache2"})
    assert r.returncode == 1
    assert "apt-get install apache2" in r.stderr


def test_missing_module(workdir):
    if os.path.exists("/usr/lib/apache2/modules/mod_oxwsgi.so"):
        pytest.skip("mod_oxwsgi.so is installed system-wide")
    # A copy of the binary without a ../modules beside it, and empty module dirs.
    (workdir / "bin").mkdir()
    shutil.copy2(OXWSGI, workdir / "bin" / "oxwsgi")
    r = subprocess.run([str(workdir / "bin" / "oxwsgi"), "serve", "--port", "0", "--module-dir", str(workdir)],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, OXWSGI_MODULE_DIR=str(workdir)))
    assert r.returncode == 1
    assert "mod_oxwsgi.so not found; looked in:" in r.stderr
    assert "make apache" in r.stderr


def test_usage_errors():
    r = run_oxwsgi("serve", "--port", "eighty")
    assert r.returncode == 2 and "--port takes a number" in r.stderr
    r = run_oxwsgi("bogus")
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = run_oxwsgi("help")
    assert r.returncode == 0 and "oxwsgi serve" not in r.stderr and "serve [APP]" in r.stdout
