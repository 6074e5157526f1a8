"""A configuration written for mod_wsgi keeps working with only the LoadModule line changed:
`<IfModule>` sections, both LoadModule spellings, and the request behaviours real
configurations rely on. Every behaviour runs on Debian's mod_wsgi 4.9 (the reference) and
on oxwsgi, with the same expected values."""

import json
import subprocess

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

DUMP = """
import json
def application(environ, start_response):
    keys = ('SCRIPT_NAME', 'PATH_INFO', 'wsgi.url_scheme', 'HTTPS', 'REMOTE_ADDR', 'HTTP_HOST',
            'SERVER_PORT', 'SERVER_NAME', 'mod_wsgi.application_group', 'mod_wsgi.process_group',
            'mod_wsgi.callable_object', 'mod_wsgi.request_handler', 'mod_wsgi.script_reloading',
            'SCRIPT_FILENAME')
    out = {k: environ.get(k) for k in keys}
    out['mod_wsgi_keys'] = sorted(k for k in environ if k.startswith('mod_wsgi.'))
    out['types'] = {k: type(v).__name__ for k, v in environ.items() if k.startswith('mod_wsgi.')}
    out['version'] = list(environ['mod_wsgi.version']) if 'mod_wsgi.version' in environ else None
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out).encode()]
"""

# The mod_wsgi.* environ keys applications read: both servers must give them.
COMMON_MOD_WSGI_KEYS = {
    "mod_wsgi.application_group", "mod_wsgi.callable_object", "mod_wsgi.process_group",
    "mod_wsgi.request_handler", "mod_wsgi.script_reloading", "mod_wsgi.version",
    "mod_wsgi.handler_script", "mod_wsgi.enable_sendfile", "mod_wsgi.ignore_activity",
    "mod_wsgi.request_start", "mod_wsgi.request_id", "mod_wsgi.script_start",
    "mod_wsgi.script_name", "mod_wsgi.path_info", "mod_wsgi.thread_id",
    "mod_wsgi.thread_requests", "mod_wsgi.total_requests",
}


class DropinServer(ApacheServer):
    """One apache2 with a mod_wsgi-style configuration; `load` is the LoadModule line."""

    def __init__(self, flavour):
        super().__init__(f"dropin-{flavour}", wsgi="modwsgi" if flavour == "modwsgi" else "oxwsgi",
                         mpm="event")
        self.flavour = flavour

    def install_module(self):
        super().install_module()
        if self.flavour == "oxwsgi-as-wsgi_module":
            self.wsgi_load = self.wsgi_load.replace("LoadModule oxwsgi_module", "LoadModule wsgi_module")

    def config_text(self):
        d = self.stage.root / "d"
        d.mkdir(exist_ok=True)
        (d / "dump.wsgi").write_text(DUMP)
        self.scripts = d
        mods = paths.APACHE_MODULES
        base = super().config_text().replace("WSGIApplicationGroup %{GLOBAL}\n", "")
        return base + f"""
LoadModule setenvif_module {mods}/mod_setenvif.so
# Guard from real configurations: never loads mod_wsgi beside a module that is already it.
<IfModule !wsgi_module>
    LoadModule wsgi_module {mods}/mod_wsgi.so
</IfModule>
<IfModule mod_wsgi.c>
    WSGIScriptAlias /ifmod-c {d}/dump.wsgi
</IfModule>
<IfModule wsgi_module>
    WSGIScriptAlias /ifmod-sym {d}/dump.wsgi
</IfModule>
<IfModule !mod_wsgi.c>
    WSGIScriptAlias /ifmod-not {d}/dump.wsgi
</IfModule>
WSGIScriptAlias /tls-env {d}/dump.wsgi
<Location /tls-env>
    SetEnv HTTPS 1
</Location>
WSGIScriptAlias /tls-setenvif {d}/dump.wsgi
SetEnvIf X-Forwarded-Proto "^https$" HTTPS=1
WSGIScriptAlias /moin/ {d}/dump.wsgi
WSGIScriptAlias /accounts {d}/dump.wsgi/accounts
WSGIScriptAlias /grp-default {d}/dump.wsgi
WSGIScriptAlias /grp-global {d}/dump.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /grp-server {d}/dump.wsgi
WSGIScriptAlias /grp-env {d}/dump.wsgi
WSGIScriptAlias /grp-named {d}/dump.wsgi application-group=named
WSGIScriptAlias /grp-resource {d}/dump.wsgi
<Location /grp-server>
    WSGIApplicationGroup %{{SERVER}}
</Location>
<Location /grp-resource>
    WSGIApplicationGroup %{{RESOURCE}}
</Location>
<Location /grp-env>
    SetEnv OXWSGI_GROUP fromenv
    WSGIApplicationGroup %{{ENV:OXWSGI_GROUP}}
</Location>
<Directory {d}>
    Require all granted
</Directory>
"""


FLAVOURS = ["modwsgi", "oxwsgi", "oxwsgi-as-wsgi_module"]


@pytest.fixture(scope="module", params=FLAVOURS)
def srv(request):
    s = DropinServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path, **kw):
    return requests.get(srv.url(path), timeout=20, **kw)


def dump(srv, path, **kw):
    r = get(srv, path, **kw)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


def test_ifmodule_sections_written_for_mod_wsgi_are_read(srv):
    assert dump(srv, "/ifmod-c/")["SCRIPT_NAME"] == "/ifmod-c"
    assert dump(srv, "/ifmod-sym/")["SCRIPT_NAME"] == "/ifmod-sym"
    assert get(srv, "/ifmod-not/").status_code == 404


def test_guard_did_not_load_mod_wsgi_beside(srv):
    # The server started (two WSGI modules would fail check_config) and serves the
    # mounts; for oxwsgi, mod_wsgi's own start-up line must be absent from the log.
    assert dump(srv, "/grp-default/")["mod_wsgi.callable_object"] == "application"
    if srv.wsgi == "oxwsgi":
        assert "mod_wsgi/4" not in srv.error_log()


@pytest.mark.parametrize("path, headers", [
    ("/tls-env/", {}),
    ("/tls-setenvif/", {"X-Forwarded-Proto": "https"}),
])
def test_https_variable_makes_the_scheme_https(srv, path, headers):
    # (mod_wsgi then leaves HTTPS out of the environ, oxwsgi gives HTTPS=on: both fine.)
    assert dump(srv, path, headers=headers)["wsgi.url_scheme"] == "https"


def test_without_https_variable_the_scheme_stays_http(srv):
    j = dump(srv, "/tls-setenvif/", headers={"X-Forwarded-Proto": "http"})
    assert j["wsgi.url_scheme"] == "http"


def test_script_alias_with_trailing_slash(srv):
    # As mod_alias: the rest of the URL is appended to the script path, so only the
    # URL with the slash itself reaches the script; everything below it is a 404.
    j = dump(srv, "/moin/")
    assert (j["SCRIPT_NAME"], j["PATH_INFO"]) == ("/moin/", "")
    for path in ("/moin", "/moin/Page/Sub", "/moin//x"):
        assert get(srv, path).status_code == 404, path


@pytest.mark.parametrize("path, script_name, path_info", [
    ("/accounts", "", "/accounts"),
    ("/accounts/login", "", "/accounts/login"),
    ("/accounts/", "", "/accounts/"),
])
def test_script_alias_to_script_with_extra_path(srv, path, script_name, path_info):
    j = dump(srv, path)
    assert (j["SCRIPT_NAME"], j["PATH_INFO"]) == (script_name, path_info)
    assert j["SCRIPT_FILENAME"].endswith("/d/dump.wsgi")


def test_application_group_names(srv):
    host = f"127.0.0.1:{srv.port}"
    assert dump(srv, "/grp-default/x")["mod_wsgi.application_group"] == f"{host}|/grp-default"
    assert dump(srv, "/grp-resource/x")["mod_wsgi.application_group"] == f"{host}|/grp-resource"
    assert dump(srv, "/grp-global/x")["mod_wsgi.application_group"] == ""
    assert dump(srv, "/grp-server/x")["mod_wsgi.application_group"] == host
    assert dump(srv, "/grp-env/x")["mod_wsgi.application_group"] == "fromenv"
    assert dump(srv, "/grp-named/x")["mod_wsgi.application_group"] == "named"


def test_mod_wsgi_environ_keys(srv):
    j = dump(srv, "/grp-default/x?a=1")
    missing = COMMON_MOD_WSGI_KEYS - set(j["mod_wsgi_keys"])
    assert not missing, missing
    assert j["mod_wsgi.process_group"] == ""
    assert j["mod_wsgi.callable_object"] == "application"
    assert j["mod_wsgi.request_handler"] == "wsgi-script"
    assert j["mod_wsgi.script_reloading"] == "1"
    assert j["version"][:2] == [4, 9]
    t = j["types"]
    assert t["mod_wsgi.version"] == "tuple"
    assert t["mod_wsgi.thread_id"] == t["mod_wsgi.total_requests"] == "int"
    assert t["mod_wsgi.request_start"] == t["mod_wsgi.request_id"] == "str"


# -- LoadModule lines, checked with `apache2 -t` -------------------------------------------

def configtest(tmp_path, body):
    so = paths.MODULE_DIR / "mod_oxwsgi.so"
    conf = tmp_path / "httpd.conf"
    (tmp_path / "app.wsgi").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    conf.write_text(f"""\
ServerRoot "{tmp_path}"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "{tmp_path}/httpd.pid"
DefaultRuntimeDir "{tmp_path}"
ErrorLog "{tmp_path}/error.log"
LoadModule mpm_event_module {paths.APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {paths.APACHE_MODULES}/mod_authz_core.so
User {paths.RUN_USER}
Group {paths.RUN_GROUP}
""" + body.format(so=so, mods=paths.APACHE_MODULES, d=tmp_path))
    r = subprocess.run([paths.APACHE_BIN, "-t", "-D", "DUMP_MODULES", "-f", str(conf)],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_loadmodule_wsgi_module_names_oxwsgi(tmp_path):
    rc, out = configtest(tmp_path, "LoadModule wsgi_module {so}\nWSGIScriptAlias /a {d}/app.wsgi\n")
    assert rc == 0, out
    assert "wsgi_module (shared)" in out


def test_guard_keeps_mod_wsgi_out(tmp_path):
    rc, out = configtest(tmp_path, "LoadModule oxwsgi_module {so}\n"
                                   "<IfModule !wsgi_module>\nLoadModule wsgi_module {mods}/mod_wsgi.so\n</IfModule>\n"
                                   "WSGIScriptAlias /a {d}/app.wsgi\n")
    assert rc == 0, out
    assert "oxwsgi_module (shared)" in out
    assert " wsgi_module (shared)" not in out, out


def test_mod_wsgi_beside_oxwsgi_is_refused(tmp_path):
    rc, out = configtest(tmp_path, "LoadModule oxwsgi_module {so}\nLoadModule wsgi_module {mods}/mod_wsgi.so\n")
    assert rc != 0, out
    assert "mod_wsgi is loaded as well as mod_oxwsgi" in out, out


def test_oxwsgi_loaded_twice_is_refused(tmp_path):
    rc, out = configtest(tmp_path, "LoadModule oxwsgi_module {so}\nLoadModule wsgi_module {so}\n")
    assert rc != 0, out
    assert "mod_oxwsgi.so is loaded twice" in out, out
