"""Application groups are interpreters (docs/interpreters.md), checked over HTTP with the
real Apache: two groups' scripts import their own `config` module from their own
directory, keep their own module globals and `sys` attributes; `%{GLOBAL}` is the main
interpreter (shared `sys.modules`; a C extension using the PyGILState API finds its own
thread state); `%{ENV:var}` and `%{SERVER}` name groups as mod_wsgi does; the default
(`%{RESOURCE}`) gives each application its own; daemon processes host several groups;
each interpreter's atexit callbacks run when the process exits, without a crash."""

import subprocess
import time

import pytest
import requests

from harness import paths
from harness.apache import MPM_TUNING, TEMPLATE, ApacheServer
from harness.mounts import MOUNTS

# One child process, so every request of a test meets the same interpreters.
ONE_PROCESS = {
    "event": "StartServers 1\nServerLimit 1\nThreadsPerChild 8\nMaxRequestWorkers 8\n"
             "MinSpareThreads 1\nMaxSpareThreads 8\n",
    "prefork": "StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nServerLimit 1\nMaxRequestWorkers 1\n",
}

APP = """
import atexit, ctypes, json, os, sys, threading
import _xxsubinterpreters as interpreters

sys.path.insert(0, os.path.dirname(__file__))
import config

STATE = {state!r}
hits = 0
_started = []

def _at_exit():
    import mod_wsgi
    name = mod_wsgi.application_group.replace('/', '_').replace('|', '_').replace(':', '_') or 'GLOBAL'
    with open(os.path.join(STATE, 'atexit-%s-%d' % (name, os.getpid())), 'w') as f:
        f.write(config.NAME)
atexit.register(_at_exit)

ctypes.pythonapi.PyThreadState_Get.restype = ctypes.c_void_p
ctypes.pythonapi.PyGILState_GetThisThreadState.restype = ctypes.c_void_p

def application(environ, start_response):
    global hits
    hits += 1
    import mod_wsgi
    q = environ.get('QUERY_STRING', '')
    if q.startswith('set='):
        sys.oxwsgi_probe = q[4:]
        sys.modules['oxwsgi_probe_module'] = type(sys)('oxwsgi_probe_module')
    if q == 'thread' and not _started:
        t = threading.Thread(target=threading.Event().wait, name='sleeper', daemon=True)
        t.start()
        _started.append(t)
    body = dict(
        pid=os.getpid(), config=config.NAME, group=environ['mod_wsgi.application_group'],
        module_group=mod_wsgi.application_group, hits=hits,
        interp=int(interpreters.get_current()), main=int(interpreters.get_main()),
        probe=getattr(sys, 'oxwsgi_probe', None),
        preloaded=getattr(sys, 'oxwsgi_preloaded', False),
        probe_module='oxwsgi_probe_module' in sys.modules,
        gilstate_is_current=ctypes.pythonapi.PyGILState_GetThisThreadState()
        == ctypes.pythonapi.PyThreadState_Get(),
        stdout_is_log=type(sys.stdout).__name__,
    )
    # The types oxwsgi gives every interpreter are one object each: they must be immutable,
    # or one group could change what another's wsgi.input or file_wrapper does.
    body['shared_types_immutable'] = []
    for t in (type(environ['wsgi.input']), environ['wsgi.file_wrapper'], type(environ['wsgi.errors'])):
        try:
            t.oxwsgi_probe = 1
        except TypeError:
            body['shared_types_immutable'].append(t.__name__)
    print('printed from group %r' % mod_wsgi.application_group)
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(body).encode()]
"""


class InterpServer(ApacheServer):
    def __init__(self, mpm="event", daemon=False):
        super().__init__(f"interp-{mpm}{'-daemon' if daemon else ''}", wsgi="oxwsgi", mpm=mpm)
        self.with_daemon = daemon

    def config_text(self):
        d = self.stage.root / "d"
        for name in ("a", "b"):
            (d / name).mkdir(parents=True, exist_ok=True)
            (d / name / "config.py").write_text(f"NAME = {name!r}\n")
            (d / name / "app.wsgi").write_text(APP.format(state=str(self.stage.state)))
        aliases = "\n".join(f"WSGIScriptAlias {prefix} {self.stage.root}/{script} application-group=%{{GLOBAL}}"
                            for prefix, script in MOUNTS)
        text = TEMPLATE.format(
            name=self.name, stage=self.stage.root, port=self.port, user=paths.RUN_USER,
            group=paths.RUN_GROUP, mpm=self.mpm, modules=paths.APACHE_MODULES,
            wsgi_load=self.wsgi_load, mpm_tuning=ONE_PROCESS[self.mpm], venv=paths.VENV,
            aliases=aliases, application_group="")  # no server-wide group: the default shows
        text += f"""
<Directory {d}>
    Require all granted
</Directory>
WSGIScriptAlias /alpha {d}/a/app.wsgi application-group=alpha
WSGIScriptAlias /beta {d}/b/app.wsgi application-group=beta
WSGIScriptAlias /global-a {d}/a/app.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /global-b {d}/b/app.wsgi application-group=%{{GLOBAL}}
WSGIScriptAlias /server-a {d}/a/app.wsgi application-group=%{{SERVER}}
WSGIScriptAlias /server-b {d}/b/app.wsgi application-group=%{{SERVER}}
WSGIScriptAlias /default-a {d}/a/app.wsgi
WSGIScriptAlias /default-b {d}/b/app.wsgi
WSGIScriptAlias /threads {d}/a/app.wsgi application-group=threads
WSGIScriptAlias /env-a {d}/a/app.wsgi
WSGIScriptAlias /env-b {d}/b/app.wsgi
<Location /env-a>
    SetEnv OXWSGI_GROUP gamma
    WSGIApplicationGroup %{{ENV:OXWSGI_GROUP}}
</Location>
<Location /env-b>
    SetEnv OXWSGI_GROUP gamma
    WSGIApplicationGroup %{{ENV:OXWSGI_GROUP}}
</Location>
"""
        (d / "preload.py").write_text("import sys\nsys.oxwsgi_preloaded = True\n")
        text += f"WSGIImportScript {d}/preload.py process-group=%{{GLOBAL}} application-group=alpha\n"
        (d / "pyo3like.wsgi").write_text(
            "raise ImportError('PyO3 modules do not yet support subinterpreters, see "
            "https://github.com/PyO3/pyo3/issues/576')\n")
        text += f"WSGIScriptAlias /pyo3like {d}/pyo3like.wsgi application-group=needs-main\n"
        if self.with_daemon:
            text += f"""
WSGIDaemonProcess iso processes=1 threads=4
WSGIScriptAlias /daemon-alpha {d}/a/app.wsgi process-group=iso application-group=alpha
WSGIScriptAlias /daemon-beta {d}/b/app.wsgi process-group=iso application-group=beta
WSGIScriptAlias /daemon-global {d}/a/app.wsgi process-group=iso application-group=%{{GLOBAL}}
"""
        return text


def get(srv, path):
    r = requests.get(srv.url(path), timeout=20)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text[:300]}\n{srv.log_tail(30)}"
    return r.json()


@pytest.fixture(params=["event", "prefork"])
def srv(request):
    s = InterpServer(request.param)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        s.check_log()
        s.cleanup()


def test_groups_have_their_own_modules_and_globals(srv):
    a1 = get(srv, "/alpha/?set=from-alpha")
    b1 = get(srv, "/beta/")
    a2 = get(srv, "/alpha/")
    assert a1["pid"] == b1["pid"] == a2["pid"]
    # Each imported the config module of its own directory.
    assert (a1["config"], b1["config"]) == ("a", "b")
    assert (a1["group"], b1["group"]) == ("alpha", "beta")
    assert (a1["module_group"], b1["module_group"]) == ("alpha", "beta")
    # Two sub-interpreters, neither the main one.
    assert a1["interp"] == a2["interp"] != b1["interp"]
    assert a1["main"] not in (a1["interp"], b1["interp"])
    # Module globals live on within a group and are not shared with the other.
    assert (a1["hits"], a2["hits"], b1["hits"]) == (1, 2, 1)
    # sys attributes and sys.modules are the group's own.
    assert (a2["probe"], a2["probe_module"]) == ("from-alpha", True)
    assert (b1["probe"], b1["probe_module"]) == (None, False)
    # WSGIImportScript application-group=alpha preloaded into alpha's interpreter only.
    assert (a1["preloaded"], b1["preloaded"]) == (True, False)
    # A C extension calling PyGILState_GetThisThreadState finds the main interpreter's
    # thread state, not the one running it: what breaks such extensions outside %{GLOBAL}.
    assert a1["gilstate_is_current"] is False
    # print() goes to the error log in every interpreter.
    assert a1["stdout_is_log"] == b1["stdout_is_log"] == "ErrorLog"
    srv.wait_for_log(r"printed from group 'beta'")
    assert a1["shared_types_immutable"] == ["Input", "FileWrapper", "ErrorLog"]


def test_global_is_the_main_interpreter(srv):
    ga = get(srv, "/global-a/?set=from-global")
    gb = get(srv, "/global-b/")
    alpha = get(srv, "/alpha/")
    assert ga["interp"] == gb["interp"] == ga["main"] != alpha["interp"]
    assert ga["group"] == gb["group"] == ""
    # One sys.modules for every %{GLOBAL} application: the second script got the config
    # module the first one imported, and sees the first one's sys attribute and module.
    assert gb["config"] == ga["config"] == "a"
    assert (gb["probe"], gb["probe_module"]) == ("from-global", True)
    assert (alpha["probe"], alpha["probe_module"]) == (None, False)
    # The PyGILState API (what C extensions such as numpy use) sees the running state.
    assert ga["gilstate_is_current"] is True


def test_env_and_server_groups(srv):
    ea, eb = get(srv, "/env-a/"), get(srv, "/env-b/")
    assert ea["group"] == eb["group"] == "gamma"
    assert ea["interp"] == eb["interp"] != ea["main"]
    assert eb["config"] == "a"  # one interpreter: the module imported first
    sa, sb = get(srv, "/server-a/"), get(srv, "/server-b/")
    assert sa["group"] == sb["group"] == f"127.0.0.1:{srv.port}"
    assert sa["interp"] == sb["interp"] not in (ea["interp"], sa["main"])


def test_default_is_one_interpreter_per_application(srv):
    da, db = get(srv, "/default-a/"), get(srv, "/default-b/")
    assert da["group"] == f"127.0.0.1:{srv.port}|/default-a"
    assert db["group"] == f"127.0.0.1:{srv.port}|/default-b"
    assert da["interp"] != db["interp"]
    assert da["main"] not in (da["interp"], db["interp"])
    assert (da["config"], db["config"]) == ("a", "b")


def test_exit_runs_each_interpreters_atexit():
    srv = InterpServer("event")
    srv.start()
    try:
        # Each request may reach another child: each interpreter's file names its process.
        pids = {"alpha": get(srv, "/alpha/")["pid"], "beta": get(srv, "/beta/")["pid"],
                "GLOBAL": get(srv, "/global-a/")["pid"],
                # A daemon thread of the application keeps its interpreter from being ended.
                "threads": get(srv, "/threads/?thread")["pid"]}
        offset = srv.stop()
        state = srv.stage.state
        deadline = time.monotonic() + 15
        wanted = {f"atexit-{n}-{pids[n]}": c for n, c in
                  (("alpha", "a"), ("beta", "b"), ("GLOBAL", "a"), ("threads", "a"))}
        while time.monotonic() < deadline and not all((state / f).exists() for f in wanted):
            time.sleep(0.1)
        assert {f: (state / f).read_text() for f in wanted if (state / f).exists()} == wanted, srv.log_tail(40)
        text = srv.log_since(offset)
        assert "interpreter \"threads\" left as it is at exit: 1 threads the application started" in text, text
        srv.check_log()
    finally:
        srv.stop()
        srv.cleanup()


def test_daemon_process_hosts_several_groups():
    srv = InterpServer("event", daemon=True)
    srv.start()
    try:
        a, b, g = get(srv, "/daemon-alpha/"), get(srv, "/daemon-beta/"), get(srv, "/daemon-global/")
        embedded = get(srv, "/alpha/")
        assert a["pid"] == b["pid"] == g["pid"] != embedded["pid"]
        assert (a["config"], b["config"]) == ("a", "b")
        assert (a["group"], b["group"], g["group"]) == ("alpha", "beta", "")
        assert len({a["interp"], b["interp"], g["interp"]}) == 3
        assert g["interp"] == g["main"]
        assert get(srv, "/daemon-alpha/")["hits"] == 2
    finally:
        srv.stop()
        srv.check_log()
        srv.cleanup()


def test_an_extension_refusing_sub_interpreters_gets_a_hint(srv):
    # The error an extension built with PyO3 raises when imported in a sub-interpreter.
    r = requests.get(srv.url("/pyo3like/"), timeout=20)
    assert r.status_code == 500
    srv.wait_for_log(r'application group "needs-main" and uses an extension module that does not support '
                     r'sub-interpreters: give it the main interpreter with WSGIApplicationGroup %\{GLOBAL\}')


@pytest.mark.parametrize("options, message", [
    ("process-group=%{GLOBAL} application-group=%{RESOURCE}", "is named from a request"),
    ("process-group=iso application-group=alpha",
     'preloading into application group "alpha" of a daemon process group is not supported yet'),
])
def test_import_script_into_a_group_it_cannot_reach_fails_configtest(options, message):
    srv = InterpServer("event", daemon=True)
    try:
        srv.stage.populate()
        srv.install_module()
        srv.write_config()
        preload = srv.stage.root / "d" / "preload.py"
        srv.conf.write_text(srv.conf.read_text() + f"WSGIImportScript {preload} {options}\n")
        srv.stage.make_readable()
        r = subprocess.run([paths.APACHE_BIN, "-t", "-f", str(srv.conf)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0, r.stdout + r.stderr
        assert message in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        srv.cleanup()
