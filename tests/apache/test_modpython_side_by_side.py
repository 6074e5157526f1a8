"""oxwsgi only: a WSGI application and mod_python handlers in one virtual host, graceful restarts,
mod_python.wsgi, auto-reload (broken in mod_python 3.5 on Python 3), and the refusal to
start beside mod_python itself."""

import subprocess
import time

import pytest
import requests

from harness import paths
from test_modpython import MODPYTHON_SO, ModPythonServer

WSGI_APP = '''
def application(environ, start_response):
    import sys
    body = ("wsgi app; mod_python loaded: %s" % ("mod_python.apache" in sys.modules)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''

RELOADED = '''
from mod_python import apache
VERSION = "one"
def handler(req):
    req.content_type = "text/plain"
    req.write("version " + VERSION)
    return apache.OK
'''

STASH = '''
import threading
from mod_python import apache
_kept = []

def handler(req):
    out = []
    if _kept:
        try:
            _kept[0].uri
            out.append("old req usable")
        except RuntimeError as e:
            out.append("old req: %s" % e)
    _kept[:] = [req]
    box = []
    def other():
        try:
            req.write("from another thread")
            box.append("written")
        except RuntimeError as e:
            box.append("thread: %s" % e)
    t = threading.Thread(target=other)
    t.start()
    t.join()
    out.extend(box)
    req.content_type = "text/plain"
    req.write("\\n".join(out))
    return apache.OK
'''

GATEWAY_APP = '''
def application(environ, start_response):
    body = "%s|%s|%s|%s" % (environ["REQUEST_METHOD"], environ.get("SCRIPT_NAME"),
                             environ.get("PATH_INFO"), environ["wsgi.input"].read().decode())
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "gw")])
    return [body.encode()]
'''


@pytest.fixture(scope="module")
def srv():
    s = ModPythonServer("oxwsgi")
    mp = s.stage.root / "mp"
    mp.mkdir(exist_ok=True)
    (mp / "app.wsgi").write_text(WSGI_APP)
    (mp / "reloaded.py").write_text(RELOADED)
    (mp / "gateway.py").write_text(GATEWAY_APP)
    (mp / "stash.py").write_text(STASH)
    s.extra = f"""
WSGIScriptAlias /wsgi {mp}/app.wsgi
<Directory {mp}>
    Require all granted
</Directory>
<Location /reloaded>
    SetHandler mod_python
    PythonHandler reloaded
</Location>
<Location /noreload>
    SetHandler mod_python
    PythonAutoReload Off
    PythonHandler reloaded
</Location>
<Location /stash>
    SetHandler mod_python
    PythonHandler stash
</Location>
<Location /echo-noop>
    SetHandler mod_python
    PythonHandler handlers::echo
    SetInputFilter NOOPIN
</Location>
<Location /gateway>
    SetHandler mod_python
    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application gateway::application
    PythonOption mod_python.wsgi.base_uri /gateway
</Location>
"""
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path, **kw):
    return requests.get(srv.url(path), timeout=20, **kw)


def test_wsgi_app_and_mod_python_handler_in_one_virtual_host(srv):
    assert get(srv, "/hello").text == "Hello, world \u00e9t\u00e9"
    r = get(srv, "/wsgi")
    assert r.status_code == 200
    assert r.text.startswith("wsgi app; mod_python loaded: ")
    assert get(srv, "/hello").text == "Hello, world \u00e9t\u00e9"
    # Both again, on one kept-alive connection.
    with requests.Session() as sess:
        for _ in range(3):
            assert sess.get(srv.url("/wsgi")).status_code == 200
            assert sess.get(srv.url("/stack")).text == "12"


def test_auto_reload_reimports_a_changed_module(srv):
    f = srv.stage.root / "mp" / "reloaded.py"
    assert get(srv, "/reloaded").text == "version one"
    assert get(srv, "/noreload").text == "version one"
    f.write_text(RELOADED.replace('"one"', '"two, longer"'))
    # A module's file is looked at once a second at most.
    time.sleep(1.1)
    assert get(srv, "/reloaded").text == "version two, longer"
    assert get(srv, "/noreload").text == "version two, longer"  # one module, one process


def test_mod_python_wsgi_gateway(srv):
    r = requests.post(srv.url("/gateway/sub/path"), data=b"posted", timeout=20)
    assert r.status_code == 201
    assert r.headers["X-App"] == "gw"
    assert r.text == "POST|/gateway|/sub/path|posted"


@pytest.mark.parametrize("oxwsgi_first", [False, True])
def test_refuses_to_start_beside_mod_python(tmp_path, oxwsgi_first):
    so = paths.MODULE_DIR / "mod_oxwsgi.so"
    conf = tmp_path / "httpd.conf"
    mods = paths.APACHE_MODULES
    loads = [f"LoadModule python_module {MODPYTHON_SO}", f"LoadModule oxwsgi_module {so}"]
    if oxwsgi_first:
        loads.reverse()
    conf.write_text(f"""
ServerRoot "{tmp_path}"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "{tmp_path}/httpd.pid"
ErrorLog "{tmp_path}/error.log"
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
{loads[0]}
{loads[1]}
<Location /x>
    SetHandler mod_python
    PythonHandler somewhere
</Location>
""")
    r = subprocess.run([paths.APACHE_BIN, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "Syntax OK" not in out
    assert out.count("mod_python is loaded as well as mod_oxwsgi") == 1, out
    assert "a2dismod python" in out


def test_input_filter_that_does_nothing_lets_the_body_through(srv):
    # Without this, the reader would get no data and no end, forever.
    r = requests.post(srv.url("/echo-noop"), data=b"untouched body", timeout=20)
    assert (r.status_code, r.content) == (200, b"untouched body")


def test_req_is_refused_after_its_request_and_from_other_threads(srv):
    first = get(srv, "/stash").text.split("\n")
    assert first == ["thread: a req object can only be used by the thread serving its request"]
    second = get(srv, "/stash").text.split("\n")
    # Ended; or, if httpd has not released the first request yet (the event MPM may finish
    # writing it later, elsewhere), owned by another thread, or still live on this one.
    assert second[0] in ("old req: the request this req object served has ended",
                         "old req: a req object can only be used by the thread serving its request",
                         "old req usable"), second
    assert second[1:] == first


def test_graceful_restart_keeps_filters_imports_and_handlers():
    s = ModPythonServer("oxwsgi")
    try:
        s.start()
        for _ in range(2):
            subprocess.run([paths.APACHE_BIN, "-f", str(s.conf), "-k", "graceful"], check=True,
                           capture_output=True, timeout=60)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if get(s, "/filtered").text == "SHORT AND STOUT":
                        break
                except requests.RequestException:
                    pass
                time.sleep(0.2)
            assert get(s, "/filtered").text == "SHORT AND STOUT"
            assert get(s, "/imported").json()["preloaded"] is True
            assert get(s, "/stack").text == "12"
    finally:
        s.stop()
        s.check_log()
        s.cleanup()
