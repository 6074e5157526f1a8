"""The mod_wsgi directives behave as in mod_wsgi, checked over HTTP against a running
apache2 with mod_oxwsgi.so (one server for the module, several mounts)."""

import os
import time

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

SCRIPTS = {
    # Reports which callable served it and what the preloaded script left behind.
    "named.wsgi": """
import os, sys
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'default callable']
def handler(environ, start_response):
    pre = sys.modules.get('oxwsgi_preloaded_marker')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('custom callable pid=%d preloaded=%s' % (os.getpid(), pre is not None)).encode()]
""",
    "preload.py": """
import sys, types, os
sys.modules['oxwsgi_preloaded_marker'] = types.ModuleType('oxwsgi_preloaded_marker')
""",
    "auth.wsgi": """
import json
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    keys = {k: environ.get(k) for k in ('HTTP_AUTHORIZATION', 'SCRIPT_NAME', 'PATH_INFO', 'mod_wsgi.application_group')}
    keys['preloaded'] = 'oxwsgi_preloaded_marker' in __import__('sys').modules
    return [json.dumps(keys).encode()]
""",
    "version.wsgi": "VERSION = 1\n" + """
import os
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'version %d pid %d' % (VERSION, os.getpid())]
""",
    "handler/page.wsgi": """
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('handler %s|%s' % (environ['SCRIPT_NAME'], environ['PATH_INFO'])).encode()]
""",
    "match/alpha.wsgi": """
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('alpha %s|%s' % (environ['SCRIPT_NAME'], environ['PATH_INFO'])).encode()]
""",
    "env.wsgi": """
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [environ.get('OXWSGI_FROM_SETENV', 'unset').encode()]
""",
}


class DirectiveServer(ApacheServer):
    def __init__(self):
        super().__init__("apache-directives", wsgi="oxwsgi", mpm="event")

    def config_text(self):
        d = self.stage.root / "d"
        d.mkdir(exist_ok=True)
        # A second copy: scripts are cached per file, so /noreload needs its own.
        SCRIPTS["version-fixed.wsgi"] = SCRIPTS["version.wsgi"]
        for name, text in SCRIPTS.items():
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text(text)
        self.scripts = d
        return super().config_text() + f"""
WSGIImportScript {d}/preload.py process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
WSGIScriptAlias /named {d}/named.wsgi
WSGIScriptAlias /named-opt {d}/named.wsgi callable-object=handler
WSGIScriptAlias /auth {d}/auth.wsgi
WSGIScriptAlias /auth-opt {d}/auth.wsgi pass-authorization=On application-group=site1
WSGIScriptAlias /version {d}/version.wsgi
WSGIScriptAlias /noreload {d}/version-fixed.wsgi
WSGIScriptAlias /env-test {d}/env.wsgi
WSGIScriptAliasMatch ^/m/([a-z]+) {d}/match/$1.wsgi
Alias /h {d}/handler
LoadModule setenvif_module {paths.APACHE_MODULES}/mod_setenvif.so
SetEnvIf Request_URI "^/env-test" OXWSGI_FROM_SETENV=from-setenvif
<Location /named>
    WSGICallableObject handler
</Location>
<Location /auth-on>
    WSGIPassAuthorization On
</Location>
WSGIScriptAlias /auth-on {d}/auth.wsgi
<Location /noreload>
    WSGIScriptReloading Off
</Location>
<Directory {d}>
    Require all granted
</Directory>
<Directory {d}/handler>
    AddHandler wsgi-script .wsgi
    Options +ExecCGI
</Directory>
"""


@pytest.fixture(scope="module")
def srv():
    s = DirectiveServer()
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path, **kw):
    r = requests.get(srv.url(path), timeout=20, **kw)
    return r


def test_callable_object_directive_and_option(srv):
    assert get(srv, "/named/x").text.startswith("custom callable")
    assert get(srv, "/named-opt/").text.startswith("custom callable")


def test_import_script_is_preloaded_in_every_child(srv):
    for _ in range(10):
        assert "preloaded=True" in get(srv, "/named/").text


def test_authorization_is_passed_only_when_configured(srv):
    hdr = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert get(srv, "/auth/", headers=hdr).json()["HTTP_AUTHORIZATION"] is None
    assert get(srv, "/auth-on/", headers=hdr).json()["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"
    j = get(srv, "/auth-opt/p", headers=hdr).json()
    assert j["HTTP_AUTHORIZATION"] == "Basic dXNlcjpwYXNz"
    assert j["mod_wsgi.application_group"] == "site1"


def test_application_group_is_an_interpreter_of_its_own(srv):
    # site1 is a sub-interpreter (docs/interpreters.md): the %{GLOBAL} preload is not in it.
    hdr = {"Authorization": "Basic dXNlcjpwYXNz"}
    j = get(srv, "/auth-opt/p", headers=hdr).json()
    assert j["mod_wsgi.application_group"] == "site1"
    assert j["preloaded"] is False
    assert "preloaded=True" in get(srv, "/named/").text
    assert "runs in the main interpreter" not in srv.error_log()


def test_script_alias_match_and_add_handler(srv):
    assert get(srv, "/m/alpha/rest/of/path").text == "alpha /m/alpha|/rest/of/path"
    assert get(srv, "/m/nothere").status_code == 404
    assert get(srv, "/h/page.wsgi/extra").text == "handler /h/page.wsgi|/extra"


def test_setenv_variables_reach_environ(srv):
    assert get(srv, "/env-test/").text == "from-setenvif"


def test_script_reloading(srv):
    scripts = [srv.scripts / "version.wsgi", srv.scripts / "version-fixed.wsgi"]

    def sample(path, n=40):
        out = []
        for _ in range(n):
            version, pid = get(srv, path).text.split()[1::2]
            out.append((int(version), int(pid)))
        return out

    before = sample("/noreload/")
    assert {v for v, _ in before} == {1}
    assert {v for v, _ in sample("/version/")} == {1}
    loaded = {pid for _, pid in before}
    for script in scripts:
        script.write_text(script.read_text().replace("VERSION = 1", "VERSION = 2"))
        st = script.stat()
        os.utime(script, (st.st_atime, st.st_mtime + 5))
    # oxwsgi compares a script's mtime at most once a second per process.
    time.sleep(1.2)
    # WSGIScriptReloading On (default): every child re-imports on its next request.
    assert {v for v, _ in sample("/version/")} == {2}
    # Off: a child that already loaded the script keeps the old module.
    after = [(v, pid) for v, pid in sample("/noreload/") if pid in loaded]
    assert after, "no request reached a child that had loaded the script"
    assert {v for v, _ in after} == {1}
