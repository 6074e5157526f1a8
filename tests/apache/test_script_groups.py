"""The interpreter of mod_wsgi's request-phase scripts, on Debian's mod_wsgi (the reference)
and on oxwsgi with the same configuration: `WSGIAccessScript`, `WSGIAuthUserScript` and
`WSGIDispatchScript` run in the main interpreter by default and in the application group
their `application-group=` names, where a WSGI application of that group sees what they
imported."""

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

STATE = """
calls = []
"""

ACCESS = """
import state

def allow_access(environ, host):
    state.calls.append('access')
    return True
"""

AUTH = """
import state

def check_password(environ, user, password):
    state.calls.append('auth')
    return password == 'secret'
"""

DISPATCH = """
import state

def application_group(environ):
    state.calls.append('dispatch')
    return None
"""

APP = """
import sys

def application(environ, start_response):
    state = sys.modules.get('state')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [(','.join(state.calls) if state else '-').encode()]
"""


class ScriptGroups(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"script-groups-{wsgi}", wsgi=wsgi, mpm="prefork")

    def config_text(self):
        d = self.stage.root / "sg"
        d.mkdir(exist_ok=True)
        apps = self.stage.root / "apps"           # on WSGIPythonPath
        apps.mkdir(exist_ok=True)
        (apps / "state.py").write_text(STATE)
        for name, text in (("access.wsgi", ACCESS), ("auth.wsgi", AUTH),
                           ("dispatch.wsgi", DISPATCH), ("app.wsgi", APP)):
            (d / name).write_text(text)
        return super().config_text() + f"""
StartServers 1
MinSpareServers 1
MaxSpareServers 2
MaxRequestWorkers 1
LoadModule auth_basic_module {paths.APACHE_MODULES}/mod_auth_basic.so
LoadModule authn_core_module {paths.APACHE_MODULES}/mod_authn_core.so
LoadModule authz_user_module {paths.APACHE_MODULES}/mod_authz_user.so
WSGIScriptAlias /global {d}/app.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /checks {d}/app.wsgi application-group=checks
WSGIScriptAlias /access-named {d}/app.wsgi application-group=checks
WSGIScriptAlias /auth-named {d}/app.wsgi application-group=checks
WSGIScriptAlias /dispatch-named {d}/app.wsgi application-group=checks
WSGIScriptAlias /access-default {d}/app.wsgi application-group=%{{GLOBAL}}
<Directory {d}>
    Require all granted
</Directory>
<Location /access-default>
    WSGIAccessScript {d}/access.wsgi
</Location>
<Location /access-named>
    WSGIAccessScript {d}/access.wsgi application-group=checks
</Location>
<Location /auth-named>
    AuthType Basic
    AuthName "groups"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {d}/auth.wsgi application-group=checks
    Require valid-user
</Location>
<Location /dispatch-named>
    WSGIDispatchScript {d}/dispatch.wsgi application-group=checks
</Location>
"""


@pytest.fixture(params=["modwsgi", "oxwsgi"])
def srv(request):
    s = ScriptGroups(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def text(srv, path, **kw):
    r = requests.get(srv.url(path), timeout=20, **kw)
    assert r.status_code == 200, (path, r.status_code)
    return r.text


def test_access_script_runs_in_the_main_interpreter_by_default(srv):
    # One process (prefork, 1 child): what the script imported is there for %{GLOBAL}.
    assert text(srv, "/access-default/") == "access"
    assert text(srv, "/checks/") == "-"


def test_scripts_run_in_the_group_they_name(srv):
    assert text(srv, "/access-named/") == "access"
    assert text(srv, "/auth-named/", auth=("u", "secret")) == "access,auth"
    assert text(srv, "/dispatch-named/") == "access,auth,dispatch"
    # Nothing of it in the main interpreter.
    assert text(srv, "/global/") == "-"
