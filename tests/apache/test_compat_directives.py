"""mod_wsgi 4.9's directives beyond the basic set, with their effect, on Debian's mod_wsgi
(the reference) and on oxwsgi with the same configuration and the same expectations:
WSGIRestrictStdout/Stdin/Signal, WSGIPythonEggs, WSGITrustedProxies/Headers,
WSGIMapHEADToGET, WSGIEnableSendfile, WSGIErrorOverride, WSGIIgnoreActivity and the
directives accepted with a notice."""

import subprocess

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

APP = """
import json, os, signal, sys
def application(environ, start_response):
    keys = ('REQUEST_METHOD', 'REMOTE_ADDR', 'HTTP_HOST', 'SERVER_PORT', 'SCRIPT_NAME', 'PATH_INFO',
            'wsgi.url_scheme', 'HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_PROTO', 'HTTP_X_REAL_IP',
            'HTTP_X_FORWARDED_HOST', 'mod_wsgi.enable_sendfile', 'mod_wsgi.ignore_activity',
            'mod_wsgi.application_group', 'mod_wsgi.callable_object', 'REMOTE_USER', 'AUTH_TYPE')
    out = {k: environ.get(k) for k in keys}
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('X-Method', environ['REQUEST_METHOD'])])
    return [json.dumps(out).encode()]

def restricted(environ, start_response):
    out = {}
    try:
        print('restricted stdout')
        out['stdout'] = 'ok'
    except Exception as e:
        out['stdout'] = '%s: %s' % (type(e).__name__, e)
    try:
        sys.stdin.read()
        out['stdin'] = 'ok'
    except Exception as e:
        out['stdin'] = '%s: %s' % (type(e).__name__, e)
    handler = lambda *a: None
    try:
        returned = signal.signal(signal.SIGUSR1, handler)
        out['signal'] = 'returned handler' if returned is handler else 'returned %r' % (returned,)
    except Exception as e:
        out['signal'] = '%s: %s' % (type(e).__name__, e)
    out['installed'] = signal.getsignal(signal.SIGUSR1) is handler
    out['eggs'] = os.environ.get('PYTHON_EGG_CACHE')
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out).encode()]

def file(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return environ['wsgi.file_wrapper'](open(__file__, 'rb'))

def alt(environ, start_response):
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'callable': 'alt', 'group': environ['mod_wsgi.application_group']}).encode()]

def metrics(environ, start_response):
    import mod_wsgi
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps({'server_metrics': mod_wsgi.server_metrics()}).encode()]

def not_found(environ, start_response):
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'the application says: no such page']
"""


DISPATCH = """
def process_group(environ):
    return 'nonexistent' if environ.get('QUERY_STRING') == 'daemon' else None

def application_group(environ):
    assert 'mod_wsgi.callable_object' not in environ
    name = environ.get('PATH_INFO', '').strip('/')
    return 'group-' + name if name else None

def callable_object(environ):
    return 'alt' if environ.get('QUERY_STRING') == 'alt' else None
"""


HANDLER = """
import json, os
def handle_request(environ, start_response):
    path = environ['SCRIPT_FILENAME']
    body = {'SCRIPT_FILENAME': path, 'handler_script': environ.get('mod_wsgi.handler_script'),
            'PATH_INFO': environ.get('PATH_INFO'), 'group': environ.get('mod_wsgi.application_group'),
            'auth': environ.get('HTTP_AUTHORIZATION'),
            'content': open(path).read() if os.path.isfile(path) else None}
    start_response('200 OK' if body['content'] is not None else '404 Not Found',
                   [('Content-Type', 'application/json')])
    return [json.dumps(body).encode()]
"""


AUTH = """
import hashlib

def get_realm_hash(environ, user, realm):
    # mod_auth_digest's HA1: md5("user:realm:password"), hex.
    if user == 'alice':
        return hashlib.md5(('%s:%s:secret' % (user, realm)).encode()).hexdigest()
    if user == 'broken':
        raise RuntimeError('broken digest script')
    return None

def check_password(environ, user, password):
    assert 'HTTP_AUTHORIZATION' not in environ
    if user in ('alice', 'carol', 'dave'):
        return password == 'secret'
    if user == 'broken':
        raise RuntimeError('broken auth script')
    if user == 'silly':
        return 'yes'
    return None
"""

GROUPS = """
def groups_for_user(environ, user):
    if user == 'dave':
        raise RuntimeError('broken group script')
    return {'alice': ['site editors'], 'carol': [b'staff']}.get(user, [])
"""

ACCESS = """
def allow_access(environ, host):
    assert host == '127.0.0.1', host
    q = environ.get('QUERY_STRING')
    if q == 'boom':
        raise RuntimeError('broken access script')
    return None if q == 'none' else q != 'deny'
"""


class CompatServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"compat-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        d = self.stage.root / "d"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(APP)
        (d / "dispatch.py").write_text(DISPATCH)
        (d / "handler.py").write_text(HANDLER)
        (d / "auth.py").write_text(AUTH)
        (d / "access.py").write_text(ACCESS)
        (d / "groups.py").write_text(GROUPS)
        (d / "static").mkdir(exist_ok=True)
        (d / "static" / "a.txt").write_text("text of a")
        (d / "handled").mkdir(exist_ok=True)
        (d / "handled" / "h.wsgi").write_text(APP)
        self.script = d / "app.wsgi"
        mods = paths.APACHE_MODULES
        return super().config_text() + f"""
LoadModule deflate_module {mods}/mod_deflate.so
LoadModule filter_module {mods}/mod_filter.so
LoadModule auth_basic_module {mods}/mod_auth_basic.so
LoadModule authn_core_module {mods}/mod_authn_core.so
LoadModule authz_user_module {mods}/mod_authz_user.so
LoadModule auth_digest_module {mods}/mod_auth_digest.so
WSGIRestrictStdout On
WSGIRestrictStdin On
WSGIRestrictSignal On
WSGIPythonEggs {self.stage.tmp}/eggs
WSGICaseSensitivity On
WSGIDestroyInterpreter Off
WSGIAcceptMutex default
WSGISocketRotation Off
WSGIPassApacheRequest Off
WSGIServerMetrics Off
WSGIScriptAlias /metrics {d}/app.wsgi callable-object=metrics

WSGIScriptAlias /plain {d}/app.wsgi
WSGIScriptAlias /restricted {d}/app.wsgi callable-object=restricted

WSGIScriptAlias /proxied {d}/app.wsgi
<Location /proxied>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Port
    WSGITrustedProxyHeaders X-Forwarded-Proto X-Script-Name
    WSGITrustedProxies 127.0.0.1
</Location>
WSGIScriptAlias /untrusted {d}/app.wsgi
<Location /untrusted>
    WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Host X-Forwarded-Proto
    WSGITrustedProxies 10.0.0.0/8 192.168.0.0/16
</Location>
WSGIScriptAlias /anyproxy {d}/app.wsgi
<Location /anyproxy>
    WSGITrustedProxyHeaders X-Forwarded-For
</Location>

WSGIScriptAlias /head-on {d}/app.wsgi
WSGIScriptAlias /head-off {d}/app.wsgi
WSGIScriptAlias /head-auto {d}/app.wsgi
WSGIScriptAlias /head-deflate {d}/app.wsgi
<Location /head-on>
    WSGIMapHEADToGET On
</Location>
<Location /head-off>
    WSGIMapHEADToGET Off
</Location>
<Location /head-deflate>
    SetOutputFilter DEFLATE
</Location>

WSGIScriptAlias /sendfile-on {d}/app.wsgi callable-object=file
WSGIScriptAlias /sendfile-off {d}/app.wsgi callable-object=file
WSGIScriptAlias /sendfile-key {d}/app.wsgi
<Location /sendfile-on>
    WSGIEnableSendfile On
</Location>
<Location /sendfile-off>
    WSGIEnableSendfile Off
</Location>
<Location /sendfile-key>
    WSGIEnableSendfile On
    WSGIIgnoreActivity On
</Location>

WSGIScriptAlias /dispatched {d}/app.wsgi
<Location /dispatched>
    WSGIDispatchScript {d}/dispatch.py
</Location>
WSGIHandlerScript text-handler {d}/handler.py application-group=handlers pass-authorization=On
Alias /hs {d}/static
<Directory {d}/static>
    AddHandler text-handler .txt
</Directory>
Alias /handled {d}/handled
Alias /handled-exec {d}/handled
<Directory {d}/handled>
    AddHandler wsgi-script .wsgi
</Directory>
<Location /handled-exec>
    Options +ExecCGI
</Location>
WSGIScriptAlias /nopathinfo {d}/app.wsgi
<Location /nopathinfo>
    AcceptPathInfo Off
</Location>
WSGIScriptAlias /authed {d}/app.wsgi
<Location /authed>
    AuthType Basic
    AuthName "oxwsgi test"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {d}/auth.py
    Require valid-user
</Location>
WSGIScriptAlias /digest {d}/app.wsgi
<Location /digest>
    AuthType Digest
    AuthName "oxwsgi digest"
    AuthDigestProvider wsgi
    WSGIAuthUserScript {d}/auth.py
    Require valid-user
</Location>
<AuthnProviderAlias wsgi wsgi-users>
    WSGIAuthUserScript {d}/auth.py
</AuthnProviderAlias>
WSGIScriptAlias /aliased {d}/app.wsgi
<Location /aliased>
    AuthType Basic
    AuthName "oxwsgi alias"
    AuthBasicProvider wsgi-users
    Require valid-user
</Location>
WSGIScriptAlias /grouped {d}/app.wsgi
<Location /grouped>
    AuthType Basic
    AuthName "oxwsgi groups"
    AuthBasicProvider wsgi
    WSGIAuthUserScript {d}/auth.py
    WSGIAuthGroupScript {d}/groups.py
    Require wsgi-group "site editors" admins
</Location>
WSGIScriptAlias /access {d}/app.wsgi
<Location /access>
    WSGIAccessScript {d}/access.py
</Location>
WSGIScriptAlias /override {d}/app.wsgi callable-object=not_found
<Location /override>
    WSGIErrorOverride On
</Location>
<Directory {d}>
    Require all granted
</Directory>
"""


@pytest.fixture(scope="module", params=["modwsgi", "oxwsgi"])
def srv(request):
    s = CompatServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path, method="GET", **kw):
    return requests.request(method, srv.url(path), timeout=20, **kw)


def js(srv, path, **kw):
    r = get(srv, path, **kw)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return r.json()


# -- WSGIRestrictStdout / Stdin / Signal, WSGIPythonEggs ------------------------------------

def test_restricted_streams_and_signal(srv):
    j = js(srv, "/restricted/")
    assert j["stdout"].startswith("OSError: sys.stdout access restricted by mod_wsgi"), j
    assert j["stdin"].startswith("OSError: sys.stdin access restricted by mod_wsgi"), j
    # signal.signal() is intercepted: it returns the handler and installs nothing.
    assert j["signal"] == "returned handler", j
    assert j["installed"] is False
    srv.wait_for_test_log(r"Callback registration for signal 10 ignored")


def test_python_eggs_sets_the_egg_cache(srv):
    assert js(srv, "/restricted/")["eggs"] == f"{srv.stage.tmp}/eggs"


# -- WSGITrustedProxies / WSGITrustedProxyHeaders --------------------------------------------

PROXY_HEADERS = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Host": "www.example.com",
                 "X-Forwarded-Port": "8443", "X-Forwarded-Proto": "https", "X-Script-Name": "/mount",
                 "X-Real-IP": "198.51.100.1"}


def test_trusted_proxy_headers_are_applied(srv):
    j = js(srv, "/proxied/x", headers=PROXY_HEADERS)
    assert j["REMOTE_ADDR"] == "203.0.113.9"
    assert j["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert j["HTTP_HOST"] == "www.example.com"
    assert j["SERVER_PORT"] == "8443"
    assert j["wsgi.url_scheme"] == "https"
    assert j["SCRIPT_NAME"] == "/mount"
    assert j["PATH_INFO"] == "/x"
    # Same category as X-Forwarded-For but not the trusted header: removed.
    assert j["HTTP_X_REAL_IP"] is None


def test_untrusted_client_cannot_spoof_proxy_headers(srv):
    # The client (127.0.0.1) is not in WSGITrustedProxies: nothing it claims is applied,
    # and the claimed headers of the configured categories do not reach the application.
    j = js(srv, "/untrusted/x", headers=PROXY_HEADERS)
    assert j["REMOTE_ADDR"] == "127.0.0.1"
    assert j["HTTP_X_FORWARDED_FOR"] is None
    assert j["HTTP_X_REAL_IP"] is None
    assert j["HTTP_X_FORWARDED_PROTO"] is None
    assert j["HTTP_X_FORWARDED_HOST"] is None
    assert j["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert j["wsgi.url_scheme"] == "http"
    assert j["SCRIPT_NAME"] == "/untrusted"


def test_trusted_proxy_chain_picks_the_client_before_the_proxies(srv):
    # Without a proxy list the first address is the client.
    j = js(srv, "/anyproxy/", headers={"X-Forwarded-For": "203.0.113.9, 10.1.1.1"})
    assert j["REMOTE_ADDR"] == "203.0.113.9"
    # With one, the last untrusted address before the trusted ones is.
    j = js(srv, "/proxied/", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 127.0.0.1"})
    assert j["REMOTE_ADDR"] == "203.0.113.9"
    assert j["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.1"


def test_without_the_directives_forwarded_headers_are_plain_headers(srv):
    j = js(srv, "/plain/", headers=PROXY_HEADERS)
    assert j["REMOTE_ADDR"] == "127.0.0.1"
    assert j["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert j["wsgi.url_scheme"] == "http"


# -- WSGIMapHEADToGET --------------------------------------------------------------------------

@pytest.mark.parametrize("path, method", [
    ("/head-on/", "GET"),
    ("/head-off/", "HEAD"),
    ("/head-auto/", "HEAD"),
])
def test_map_head_to_get(srv, path, method):
    r = get(srv, path, method="HEAD", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["X-Method"] == method
    assert r.content == b""


def test_map_head_to_get_auto_with_a_content_filter(srv):
    # Auto (the default) maps HEAD to GET when the first output filter is a content filter
    # (here DEFLATE), so the filter computes the same headers as for GET: what mod_wsgi's
    # documentation and code say. Debian's mod_wsgi 4.9.4 measurably leaves it HEAD
    # (docs/differences-from-mod_wsgi.md); the client gets the same response either way.
    r = get(srv, "/head-deflate/", method="HEAD", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["X-Method"] == ("HEAD" if srv.wsgi == "modwsgi" else "GET")
    assert r.headers.get("Content-Encoding") == "gzip"
    assert r.content == b""


# -- WSGIEnableSendfile, WSGIIgnoreActivity ----------------------------------------------------

@pytest.mark.parametrize("path", ["/sendfile-on/", "/sendfile-off/"])
def test_file_wrapper_with_and_without_sendfile(srv, path):
    r = get(srv, path)
    assert r.status_code == 200
    assert r.content == srv.script.read_bytes()


def test_environ_reports_sendfile_and_ignore_activity(srv):
    j = js(srv, "/sendfile-key/")
    assert (j["mod_wsgi.enable_sendfile"], j["mod_wsgi.ignore_activity"]) == ("1", "1")


def test_server_metrics_off(srv):
    assert js(srv, "/metrics/") == {"server_metrics": None}


# -- WSGIDispatchScript -----------------------------------------------------------------------

def test_dispatch_script_chooses_group_and_callable(srv):
    j = js(srv, "/dispatched/x")
    assert j["mod_wsgi.application_group"] == "group-x"
    assert j["mod_wsgi.callable_object"] == "application"
    # None keeps the configured group (the harness sets WSGIApplicationGroup %{GLOBAL}).
    assert js(srv, "/dispatched/")["mod_wsgi.application_group"] == ""
    assert js(srv, "/dispatched/y?alt") == {"callable": "alt", "group": "group-y"}


def test_dispatch_script_naming_a_missing_daemon_group_is_500(srv):
    assert get(srv, "/dispatched/?daemon").status_code == 500


# -- WSGIHandlerScript ------------------------------------------------------------------------

def test_handler_script_handles_mapped_files(srv):
    j = js(srv, "/hs/a.txt", headers={"Authorization": "Basic eDp5"})
    assert j["SCRIPT_FILENAME"] == f"{srv.stage.root}/d/static/a.txt"
    assert j["handler_script"] == f"{srv.stage.root}/d/handler.py"
    assert j["content"] == "text of a"
    assert j["group"] == "handlers"
    assert j["auth"] == "Basic eDp5"
    # No Options ExecCGI needed, and the file need not exist: the handler decides.
    r = get(srv, "/hs/missing.txt")
    assert r.status_code == 404
    assert r.json()["content"] is None


# -- scripts reached through AddHandler need ExecCGI; AcceptPathInfo Off --------------------

def test_add_handler_script_needs_exec_cgi(srv):
    assert get(srv, "/handled/h.wsgi").status_code == 403
    assert js(srv, "/handled-exec/h.wsgi/more")["PATH_INFO"] == "/more"


def test_accept_path_info_off(srv):
    assert get(srv, "/nopathinfo/extra").status_code == 404
    assert js(srv, "/nopathinfo")["PATH_INFO"] == ""


# -- WSGIAuthUserScript (AuthBasicProvider wsgi), WSGIAccessScript --------------------------

@pytest.mark.parametrize("auth, status", [
    (None, 401),
    (("alice", "secret"), 200),
    (("alice", "wrong"), 401),
    (("bob", "x"), 401),
])
def test_auth_user_script(srv, auth, status):
    r = get(srv, "/authed/", auth=auth)
    assert r.status_code == status, r.text[:200]
    if status == 200:
        assert (r.json()["REMOTE_USER"], r.json()["AUTH_TYPE"]) == ("alice", "Basic")


@pytest.mark.parametrize("user, password, status", [
    ("alice", "secret", 200),
    ("alice", "wrong", 401),
    ("bob", "secret", 401),
    ("broken", "x", 500),
])
def test_auth_digest_provider(srv, user, password, status):
    from requests.auth import HTTPDigestAuth
    r = get(srv, "/digest/", auth=HTTPDigestAuth(user, password))
    assert r.status_code == status, r.text[:200]
    if status == 200:
        assert (r.json()["REMOTE_USER"], r.json()["AUTH_TYPE"]) == ("alice", "Digest")


def test_authn_provider_alias(srv):
    assert get(srv, "/aliased/", auth=("alice", "secret")).status_code == 200
    assert get(srv, "/aliased/", auth=("alice", "wrong")).status_code == 401


def test_auth_user_script_failure_is_500(srv):
    assert get(srv, "/authed/", auth=("broken", "x")).status_code == 500


def test_auth_user_script_result_of_the_wrong_type(srv):
    # mod_wsgi takes a str from check_password() as "granted"; oxwsgi refuses anything but
    # True/False/None (500): a truthy mistake must not let a user in.
    r = get(srv, "/authed/", auth=("silly", "x"))
    assert r.status_code == (200 if srv.wsgi == "modwsgi" else 500)


@pytest.mark.parametrize("user, status", [("alice", 200), ("carol", 401), ("dave", 401), (None, 401)])
def test_auth_group_script(srv, user, status):
    r = get(srv, "/grouped/", auth=(user, "secret") if user else None)
    assert r.status_code == status


@pytest.mark.parametrize("query, status", [("", 200), ("deny", 403), ("none", 200), ("boom", 403)])
def test_access_script(srv, query, status):
    assert get(srv, f"/access/?{query}").status_code == status


# -- WSGIErrorOverride: daemon mode only, embedded responses keep the app's page -------------

def test_error_override_leaves_embedded_responses_alone(srv):
    r = get(srv, "/override/")
    assert r.status_code == 404
    assert r.text == "the application says: no such page"


# -- configtest ----------------------------------------------------------------------------------

def configtest(tmp_path, load, body):
    conf = tmp_path / "httpd.conf"
    conf.write_text(f"""\
ServerRoot "{tmp_path}"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "{tmp_path}/httpd.pid"
DefaultRuntimeDir "{tmp_path}"
ErrorLog "{tmp_path}/error.log"
LoadModule mpm_event_module {paths.APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {paths.APACHE_MODULES}/mod_authz_core.so
{load}
User {paths.RUN_USER}
Group {paths.RUN_GROUP}
{body}
""")
    r = subprocess.run([paths.APACHE_BIN, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


LOADS = {
    "modwsgi": f"LoadModule wsgi_module {paths.MODWSGI_SO}",
    "oxwsgi": f"LoadModule oxwsgi_module {paths.MODULE_DIR}/mod_oxwsgi.so",
}


@pytest.mark.parametrize("wsgi", ["modwsgi", "oxwsgi"])
@pytest.mark.parametrize("line", [
    "WSGIRestrictStdout Off", "WSGIRestrictStdin Off", "WSGIRestrictSignal Off",
    "WSGIPythonEggs /tmp/eggs", "WSGICaseSensitivity Off", "WSGIDestroyInterpreter On",
    "WSGIAcceptMutex flock", "WSGISocketRotation On", "WSGIIgnoreActivity Off",
    "WSGIErrorOverride Off", "WSGIMapHEADToGET Auto", "WSGIEnableSendfile Off",
    "WSGIPassApacheRequest Off", "WSGIVerboseDebugging Off", "WSGIServerMetrics On",
    "<Location /x>\nWSGIGroupAuthoritative Off\n</Location>",
    "WSGITrustedProxies 10.0.0.1 10.1.0.0/16 fd00::/8",
    "WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto X-Forwarded-Host",
])
def test_directive_accepted_as_by_mod_wsgi(tmp_path, wsgi, line):
    rc, out = configtest(tmp_path, LOADS[wsgi], line)
    assert rc == 0, out
    assert "Syntax OK" in out


@pytest.mark.parametrize("line, message", [
    ("WSGITrustedProxies example.com", "is not an IP address or subnet"),
    ("WSGITrustedProxyHeaders X-Forwarded-Bogus", "is not a proxy header"),
    ("WSGIMapHEADToGET Sometimes", "must be On, Off or Auto"),
    ("WSGIPassApacheRequest On", "WSGIPassApacheRequest On is not supported"),
    ("WSGIAcceptMutex nonsense", "WSGIAcceptMutex must be one of"),
    ("<VirtualHost 127.0.0.1:1>\nWSGIRestrictStdout On\n</VirtualHost>", "cannot occur within a <VirtualHost>"),
    ("WSGIDispatchScript /nonexistent/dispatch.py", "does not exist"),
    ("<Location /x>\nWSGIAuthUserScript /nonexistent/auth.wsgi\n</Location>",
     "WSGIAuthUserScript: script /nonexistent/auth.wsgi does not exist"),
    ("WSGIUserAuthoritative Off", "WSGIUserAuthoritative is a mod_wsgi directive that oxwsgi does not support yet"),
    ("WSGINewRelicConfigFile /tmp/newrelic.ini", "WSGINewRelicConfigFile is a mod_wsgi directive"),
])
def test_oxwsgi_refuses_what_it_cannot_do(tmp_path, line, message):
    rc, out = configtest(tmp_path, LOADS["oxwsgi"], line)
    assert rc != 0, out
    assert message in out, out


def test_notices_say_why_a_directive_does_not_apply(tmp_path):
    # post_config (which writes the notices) does not run for -t: start in the foreground
    # with a configuration that makes httpd stop right after reading it (-X would serve).
    from harness import procs
    conf = tmp_path / "httpd.conf"
    port = procs.free_port()
    conf.write_text(f"""\
ServerRoot "{tmp_path}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{tmp_path}/httpd.pid"
DefaultRuntimeDir "{tmp_path}"
ErrorLog "{tmp_path}/error.log"
LogLevel notice
LoadModule mpm_event_module {paths.APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {paths.APACHE_MODULES}/mod_authz_core.so
{LOADS["oxwsgi"]}
User {paths.RUN_USER}
Group {paths.RUN_GROUP}
WSGIErrorOverride On
WSGIAcceptMutex flock
WSGICaseSensitivity Off
""")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    subprocess.run([paths.APACHE_BIN, "-f", str(conf), "-k", "start"], env=env, check=True, timeout=60)
    try:
        log = ""
        for _ in range(100):
            log = (tmp_path / "error.log").read_text() if (tmp_path / "error.log").exists() else ""
            if "WSGICaseSensitivity" in log:
                break
            import time
            time.sleep(0.1)
    finally:
        subprocess.run([paths.APACHE_BIN, "-f", str(conf), "-k", "stop"], env=env, timeout=60)
        procs.kill_survivors(procs.with_cmdline(str(conf)))
    assert "WSGIErrorOverride On applies to responses of daemon process groups only" in log, log
    assert "WSGIAcceptMutex flock is accepted and has no effect" in log, log
    assert "WSGICaseSensitivity Off is ignored" in log, log
