"""mod_python's interpreters under oxwsgi (docs/interpreters.md): handlers of two virtual
hosts, or under two `PythonInterpreter` names, share no modules and no module globals;
one name is one interpreter; `main_interpreter` is the main one. Checked against Debian's
mod_python 3.5 where both can run (mod_python cannot be loaded beside a WSGI module); the
names are shared with WSGI application groups, on oxwsgi only."""

import pytest
import requests

from test_modpython import ModPythonServer

SHOW = '''
import json, sys
import config
from mod_python import apache

COUNT = [0]

def handler(req):
    COUNT[0] += 1
    req.content_type = "application/json"
    req.write(json.dumps({"value": config.VALUE, "count": COUNT[0], "interpreter": req.interpreter,
                          "modules": id(sys.modules)}))
    return apache.OK
'''

WSGI_APP = '''
import json, sys

def application(environ, start_response):
    show = sys.modules.get("show")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"show_count": show.COUNT[0] if show else None,
                        "group": environ["mod_wsgi.application_group"],
                        "modules": id(sys.modules)}).encode()]
'''


def stage_dirs(s):
    dirs = {}
    for name in ("a", "b"):
        d = s.stage.root / "interp" / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "show.py").write_text(SHOW)
        (d / "config.py").write_text(f"VALUE = {name!r}\n")
        dirs[name] = d
    (s.stage.root / "interp" / "app.wsgi").write_text(WSGI_APP)
    return dirs


def location(path, d, interpreter=None):
    named = f"    PythonInterpreter {interpreter}\n" if interpreter else ""
    return f"""
<Location {path}>
    SetHandler mod_python
    PythonPath "['{d}']+sys.path"
{named}    PythonHandler show
</Location>
"""


def start(flavour, extra_fn):
    s = ModPythonServer(flavour, minimal=True)
    dirs = stage_dirs(s)
    s.extra = extra_fn(s, dirs)
    s.start()
    return s


def get(s, path, host=None):
    headers = {"Host": host} if host else {}
    r = requests.get(s.url(path), headers=headers, timeout=20)
    assert r.status_code == 200, (path, r.status_code, r.text[:500])
    return r.json()


@pytest.mark.parametrize("flavour", ["modpython", "oxwsgi"])
def test_named_interpreters_are_isolated(flavour):
    s = start(flavour, lambda s, d: location("/a", d["a"], "first") + location("/a2", d["a"], "first")
              + location("/b", d["b"], "second"))
    try:
        a1, b1, a2, again = get(s, "/a"), get(s, "/b"), get(s, "/a2"), get(s, "/b")
        # Each name imported its own `config` (same module name, different directories).
        assert (a1["value"], b1["value"]) == ("a", "b")
        assert (a1["interpreter"], b1["interpreter"]) == ("first", "second")
        # One name is one interpreter: /a2 sees the module globals /a left.
        assert (a1["count"], a2["count"]) == (1, 2)
        assert a2["modules"] == a1["modules"]
        # Another name shares nothing.
        assert (b1["count"], again["count"]) == (1, 2)
        assert b1["modules"] != a1["modules"]
    finally:
        s.stop()
        s.check_log()
        s.cleanup()


@pytest.mark.parametrize("flavour", ["modpython", "oxwsgi"])
def test_virtual_hosts_get_their_own_interpreters_by_default(flavour):
    def conf(s, d):
        return f"""
<VirtualHost 127.0.0.1:{s.port}>
    ServerName one.example
{location("/v", d["a"])}
</VirtualHost>
<VirtualHost 127.0.0.1:{s.port}>
    ServerName two.example
{location("/v", d["b"])}
</VirtualHost>
"""
    s = start(flavour, conf)
    try:
        one, two = get(s, "/v", "one.example"), get(s, "/v", "two.example")
        assert (one["interpreter"], two["interpreter"]) == ("one.example", "two.example")
        assert (one["value"], two["value"]) == ("a", "b")
        assert one["modules"] != two["modules"]
        assert get(s, "/v", "one.example")["count"] == 2
    finally:
        s.stop()
        s.check_log()
        s.cleanup()


def test_a_name_is_shared_with_the_wsgi_application_group_of_that_name():
    def conf(s, d):
        app = s.stage.root / "interp" / "app.wsgi"
        return (location("/a", d["a"], "shared") + location("/main", d["b"], "main_interpreter") + f"""
WSGIScriptAlias /w-shared {app} application-group=shared
WSGIScriptAlias /w-other {app} application-group=other
WSGIScriptAlias /w-global {app} application-group=%{{GLOBAL}}
<Directory {s.stage.root}/interp>
    Require all granted
</Directory>
""")
    s = start("oxwsgi", conf)
    try:
        a = get(s, "/a")
        shared, other = get(s, "/w-shared"), get(s, "/w-other")
        # The WSGI application in group "shared" runs where the handler named "shared" ran.
        assert (shared["show_count"], shared["group"], shared["modules"]) == (1, "shared", a["modules"])
        assert other["show_count"] is None and other["modules"] != a["modules"]
        # main_interpreter is the main one: %{GLOBAL}'s.
        main = get(s, "/main")
        glob = get(s, "/w-global")
        assert main["interpreter"] == "main_interpreter"
        assert (glob["group"], glob["show_count"], glob["modules"]) == ("", 1, main["modules"])
    finally:
        s.stop()
        s.check_log()
        s.cleanup()
