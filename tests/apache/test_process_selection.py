"""Which daemon process group a request runs in, beyond WSGIProcessGroup / process-group= of
WSGIScriptAlias (issue 11), each on Debian's mod_wsgi 4.9.4 (the reference) and on oxwsgi
with the same configuration and the same expectations:

- WSGIRestrictProcess: the groups a context may select; a selection outside the list (from
  an .htaccess SetEnv read by %{ENV:...}, or from a dispatch script) is answered 500;
- process-group= on WSGIHandlerScript: the handler script runs in that daemon group;
- WSGIDispatchScript's process_group(environ): the request runs in the group it returns.

The applications answer with the group named in their environ and the one their process
belongs to (`mod_wsgi.process_group` of the module), and their pid: a request that really
ran in a daemon group ran in another process than Apache's children.

(That WSGIRestrictProcess cannot itself be set from an .htaccess is httpd's own check of
the directive's context, ACCESS_CONF|RSRC_CONF as in mod_wsgi.)"""

import json

import pytest
import requests

from harness.apache import ApacheServer

APP = """
import json, os
import mod_wsgi
def application(environ, start_response):
    body = {'environ': environ.get('mod_wsgi.process_group'), 'process': mod_wsgi.process_group,
            'pid': os.getpid(), 'app_group': environ.get('mod_wsgi.application_group')}
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(body).encode()]
"""

HANDLER = """
import json, os
import mod_wsgi
def handle_request(environ, start_response):
    body = {'environ': environ.get('mod_wsgi.process_group'), 'process': mod_wsgi.process_group,
            'pid': os.getpid(), 'file': os.path.basename(environ['SCRIPT_FILENAME'])}
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(body).encode()]
"""

# The group comes from the query string; None keeps the configured one.
DISPATCH = """
def process_group(environ):
    q = environ.get('QUERY_STRING', '')
    return {'alpha': 'alpha', 'beta': 'beta', 'embedded': '%{GLOBAL}', 'env': '%{ENV:PICK}',
            'missing': 'gamma'}.get(q)

def application_group(environ):
    return 'dispatched' if environ.get('QUERY_STRING') == 'alpha' else None
"""


class SelectionServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"selection-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        d = self.stage.root / "sel"
        for sub in ("users/bob", "users/bob/wiki", "users/joe", "handled"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "app.wsgi").write_text(APP)
        (d / "handler.py").write_text(HANDLER)
        (d / "dispatch.py").write_text(DISPATCH)
        for f in ("users/bob/home.wsgi", "users/bob/evil.wsgi", "users/bob/global.wsgi",
                  "users/bob/wiki/wiki.wsgi", "users/joe/app.wsgi"):
            (d / f).write_text(APP)
        (d / "handled" / "page.txt").write_text("page\n")
        # bob may use his own groups only; the .htaccess tries joe's and the embedded one.
        (d / "users/bob/.htaccess").write_text(
            "<Files evil.wsgi>\nSetEnv PICK joe\n</Files>\n"
            "<Files global.wsgi>\nSetEnv PICK %{GLOBAL}\n</Files>\n")
        (d / "users/bob/wiki/.htaccess").write_text("SetEnv PICK bob\n")
        return super().config_text() + f"""
WSGIDaemonProcess alpha processes=1 threads=2
WSGIDaemonProcess beta processes=1 threads=2
WSGIDaemonProcess bob processes=1 threads=2
WSGIDaemonProcess joe processes=1 threads=2

WSGIScriptAlias /embedded {d}/app.wsgi

Alias /users {d}/users
<Directory {d}/users>
    Options ExecCGI
    AllowOverride FileInfo
    AddHandler wsgi-script .wsgi
    SetEnv PICK bob
    WSGIProcessGroup %{{ENV:PICK}}
    Require all granted
</Directory>
<Directory {d}/users/bob>
    WSGIRestrictProcess bob
</Directory>
<Directory {d}/users/joe>
    SetEnv PICK joe
    WSGIRestrictProcess joe %{{GLOBAL}}
</Directory>

WSGIHandlerScript daemon-handler {d}/handler.py process-group=alpha
WSGIHandlerScript env-handler {d}/handler.py process-group=%{{ENV:PICK}}
Alias /handled {d}/handled
Alias /handled-env {d}/handled
<Location /handled>
    SetHandler daemon-handler
</Location>
<Location /handled-env>
    SetEnv PICK beta
    SetHandler env-handler
</Location>

WSGIScriptAlias /dispatched {d}/app.wsgi
WSGIScriptAlias /dispatched-locked {d}/app.wsgi process-group=alpha
<Location /dispatched>
    SetEnv PICK beta
    WSGIDispatchScript {d}/dispatch.py
</Location>
<Location /dispatched-locked>
    WSGIDispatchScript {d}/dispatch.py
    WSGIRestrictProcess alpha
</Location>

<Directory {d}>
    Require all granted
</Directory>
"""


@pytest.fixture(scope="module", params=["modwsgi", "oxwsgi"])
def srv(request):
    s = SelectionServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path):
    return requests.get(srv.url(path), timeout=20)


def ran_in(srv, path):
    """The group a request ran in: (group in its environ, group of its process)."""
    r = get(srv, path)
    assert r.status_code == 200, (path, r.status_code, r.text[:300])
    j = r.json()
    return j["environ"], j["process"]


def embedded_pids(srv):
    """Pids of Apache's children (which run embedded requests)."""
    from harness import procs
    return set(procs.with_cmdline(str(srv.conf))) - daemon_pids(srv)


def daemon_pids(srv):
    return {get(srv, f"/dispatched/?{g}").json()["pid"] for g in ("alpha", "beta")}


# -- WSGIRestrictProcess ----------------------------------------------------------------------

def test_restrict_process_allows_the_listed_groups(srv):
    assert ran_in(srv, "/users/bob/home.wsgi") == ("bob", "bob")
    # An .htaccess further down picks a listed group: allowed.
    assert ran_in(srv, "/users/bob/wiki/wiki.wsgi") == ("bob", "bob")
    assert ran_in(srv, "/users/joe/app.wsgi") == ("joe", "joe")


def test_htaccess_picking_another_group_is_refused(srv):
    # .htaccess: SetEnv PICK joe for evil.wsgi; bob's directory allows bob only.
    r = get(srv, "/users/bob/evil.wsgi")
    assert r.status_code == 500
    srv.wait_for_test_log(r".joe. cannot be (accessed|selected)")


def test_embedded_mode_is_a_selection_too(srv):
    # %{GLOBAL} (embedded) is not in bob's list: refused; joe's list has it.
    assert get(srv, "/users/bob/global.wsgi").status_code == 500


# -- WSGIHandlerScript process-group= ----------------------------------------------------------

def test_handler_script_runs_in_its_daemon_group(srv):
    r = get(srv, "/handled/page.txt")
    assert r.status_code == 200, r.text[:300]
    j = r.json()
    assert (j["environ"], j["process"], j["file"]) == ("alpha", "alpha", "page.txt")
    assert j["pid"] not in embedded_pids(srv)


def test_handler_script_process_group_from_the_environment(srv):
    j = get(srv, "/handled-env/page.txt").json()
    assert (j["environ"], j["process"]) == ("beta", "beta")


# -- WSGIDispatchScript process_group() --------------------------------------------------------

@pytest.mark.parametrize("query, group", [
    ("alpha", "alpha"),
    ("beta", "beta"),
    ("env", "beta"),        # %{ENV:PICK}, set to beta for the location
    ("embedded", ""),
    ("", ""),               # None: the configured group (none: embedded)
])
def test_dispatch_script_chooses_the_daemon_group(srv, query, group):
    r = get(srv, f"/dispatched/?{query}")
    assert r.status_code == 200, r.text[:300]
    j = r.json()
    assert j["environ"] == group
    assert j["process"] == group
    assert (j["pid"] in embedded_pids(srv)) is (group == "")
    if query == "alpha":
        assert j["app_group"] == "dispatched"


def test_dispatch_script_naming_an_undefined_group_is_500(srv):
    assert get(srv, "/dispatched/?missing").status_code == 500
    srv.wait_for_test_log(r"(No WSGI daemon process called|no WSGI daemon process called) .?gamma")


def test_dispatch_script_choice_is_checked_by_restrict_process(srv):
    assert ran_in(srv, "/dispatched-locked/") == ("alpha", "alpha")
    assert get(srv, "/dispatched-locked/?beta").status_code == 500
    assert get(srv, "/dispatched-locked/?embedded").status_code == 500


def test_same_answers_on_both_servers(srv):
    # A summary the two runs can be compared on by eye in the -rA output.
    out = {p: get(srv, p).status_code for p in ("/users/bob/evil.wsgi", "/users/joe/app.wsgi",
                                                   "/dispatched-locked/?beta", "/handled/page.txt")}
    print(srv.wsgi, json.dumps(out))
    assert out == {"/users/bob/evil.wsgi": 500, "/users/joe/app.wsgi": 200,
                   "/dispatched-locked/?beta": 500, "/handled/page.txt": 200}


# -- a group defined in a virtual host --------------------------------------------------------

class VhostServer(ApacheServer):
    """mod_wsgi: a group defined in a virtual host serves that virtual host, and others with
    the same ServerName (here: the same name on a second port), never another one."""

    def __init__(self, wsgi):
        super().__init__(f"vhostgroup-{wsgi}", wsgi=wsgi, mpm="event")
        from harness import procs
        self.port2 = procs.free_port()

    def config_text(self):
        d = self.stage.root / "vh"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(APP)
        return super().config_text() + f"""
Listen 127.0.0.1:{self.port2}
WSGIDaemonProcess global processes=1 threads=2
<VirtualHost *:{self.port}>
    ServerName a.example
    WSGIDaemonProcess vha processes=1 threads=2
    WSGIScriptAlias /own {d}/app.wsgi process-group=vha
    WSGIScriptAlias /global {d}/app.wsgi process-group=global
</VirtualHost>
<VirtualHost *:{self.port}>
    ServerName b.example
    WSGIScriptAlias /steal {d}/app.wsgi process-group=vha
    WSGIScriptAlias /global {d}/app.wsgi process-group=global
</VirtualHost>
<VirtualHost *:{self.port2}>
    ServerName a.example
    WSGIScriptAlias /twin {d}/app.wsgi process-group=vha
</VirtualHost>
<Directory {d}>
    Require all granted
</Directory>
"""

    def wait_ready(self, timeout=40.0):
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.url("/own"), headers={"Host": "a.example"}, timeout=5)
                return
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name}: no answer\n{self.log_tail()}")


@pytest.fixture(scope="module", params=["modwsgi", "oxwsgi"])
def vsrv(request):
    s = VhostServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def test_group_of_a_virtual_host_serves_it(vsrv):
    r = requests.get(vsrv.url("/own"), headers={"Host": "a.example"}, timeout=20)
    assert (r.status_code, r.json()["process"]) == (200, "vha")
    # The same ServerName on another port may use it too.
    r = requests.get(f"http://127.0.0.1:{vsrv.port2}/twin", headers={"Host": "a.example"}, timeout=20)
    assert (r.status_code, r.json()["process"]) == (200, "vha")


def test_group_of_another_virtual_host_is_refused(vsrv):
    r = requests.get(vsrv.url("/steal"), headers={"Host": "b.example"}, timeout=20)
    assert r.status_code == 500
    vsrv.wait_for_test_log(r"vha.? cannot be (accessed|selected)")


def test_global_group_serves_every_virtual_host(vsrv):
    for host in ("a.example", "b.example"):
        r = requests.get(vsrv.url("/global"), headers={"Host": host}, timeout=20)
        assert (r.status_code, r.json()["process"]) == (200, "global")
