"""Directive mistakes fail `apache2 -t` with one precise message, naming the problem;
unsupported mod_wsgi directives are refused by name instead of being ignored."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from harness import paths

BASE = """\
ServerRoot "{d}"
ServerName 127.0.0.1
Listen 127.0.0.1:1
PidFile "{d}/httpd.pid"
DefaultRuntimeDir "{d}"
ErrorLog "{d}/error.log"
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule oxwsgi_module {d}/mod_oxwsgi.so
User {user}
Group {group}
"""


@pytest.fixture
def stage():
    d = Path(tempfile.mkdtemp(prefix="oxwsgi-configtest-"))
    d.chmod(0o755)
    so = paths.MODULE_DIR / "mod_oxwsgi.so"
    if not so.exists():
        pytest.fail(f"{so} missing: run `make apache` first")
    shutil.copy(so, d / "mod_oxwsgi.so")
    (d / "app.wsgi").write_text("def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def configtest(d, extra, env=None):
    conf = d / "httpd.conf"
    conf.write_text(BASE.format(d=d, user=paths.RUN_USER, group=paths.RUN_GROUP) + extra)
    r = subprocess.run([paths.APACHE_BIN, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60,
                       env=env)
    return r.returncode, r.stdout + r.stderr


def test_valid_configuration_passes(stage):
    rc, out = configtest(stage, f"""
WSGIScriptAlias /app {stage}/app.wsgi process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
WSGIScriptAliasMatch ^/m/([a-z]+) {stage}/$1.wsgi
WSGIPythonHome {paths.VENV}
WSGIPythonPath {stage}
WSGIChunkedRequest On
WSGIPassAuthorization On
WSGICallableObject application
WSGIApplicationGroup %{{GLOBAL}}
WSGIProcessGroup %{{GLOBAL}}
WSGIScriptReloading Off
WSGIImportScript {stage}/app.wsgi process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
WSGIRestrictEmbedded Off
WSGIDaemonProcess site processes=2 threads=15 display-name=%{{GROUP}}
WSGISocketPrefix run/wsgi
WSGIPythonOptimize 1
WSGIPythonHashSeed 42
WSGIDontWriteBytecode On
WSGIPythonWarnings ignore
WSGISwitchInterval 0.005
AddHandler wsgi-script .wsgi
""")
    assert rc == 0, out
    assert "Syntax OK" in out


@pytest.mark.parametrize("directive, message", [
    ("WSGIScriptAlias /app {d}/missing.wsgi", "WSGI script {d}/missing.wsgi does not exist"),
    ("WSGIScriptAlias /app relative.wsgi", "must be absolute"),
    ("WSGIScriptAlias /app", "takes a URL path and a script path"),
    ("WSGIScriptAlias /app {d}/app.wsgi process-group=daemon1", 'process group "daemon1" is not defined'),
    ("WSGIScriptAlias /app {d}/app.wsgi bogus=1", "option \"bogus\" is not supported"),
    ("WSGIScriptAliasMatch ^/(unclosed {d}/app.wsgi", "is not a valid regular expression"),
    ("WSGIPythonHome {d}/nowhere", "{d}/nowhere is not a directory"),
    ("WSGIPythonHome {d}", "is neither a virtualenv"),
    ("WSGIPythonPath {d}/nowhere", "WSGIPythonPath: {d}/nowhere is not a directory"),
    ("WSGIChunkedRequest Maybe", "must be On or Off"),
    ("WSGIImportScript {d}/missing.py", "does not exist"),
    ("WSGIProcessGroup mygroup", 'process group "mygroup" is not defined'),
    ("WSGIPythonOptimize 3", "must be 0, 1 or 2"),
    ("<VirtualHost 127.0.0.1:1>\nWSGIPythonHome {venv}\n</VirtualHost>", "cannot occur within a <VirtualHost>"),
])
def test_mistakes_fail_configtest_with_a_precise_message(stage, directive, message):
    rc, out = configtest(stage, directive.format(d=stage, venv=paths.VENV) + "\n")
    assert rc != 0, out
    assert message.format(d=stage) in out, out
    assert "Syntax OK" not in out


def test_virtualenv_of_another_python_version_is_refused(stage):
    venv = stage / "venv312"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n")
    rc, out = configtest(stage, f"WSGIPythonHome {venv}\n")
    assert rc != 0
    assert "is a virtualenv made with Python 3.12.1, but oxwsgi is built against Python 3.11" in out, out


def test_python_home_unreadable_by_the_worker_user_is_refused(stage):
    # The suite runs as root (it starts servers that drop to www-data).
    assert os.geteuid() == 0, "run the test suite as root"
    venv = stage / "private" / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    (stage / "private").chmod(0o700)
    rc, out = configtest(stage, f"WSGIPythonHome {venv}\n")
    assert rc != 0
    assert "is not accessible to the user the httpd children run as" in out, out


# A panic must fail closed: `apache2 -t` reports it and fails instead of printing "Syntax OK".
# OXWSGI_TEST_PANIC (test-only, read once per process) makes the module panic at one point.
@pytest.mark.parametrize("point, where", [
    ("directive", "directive"),
    ("check_config", "check_config"),
])
def test_a_panic_fails_configtest(stage, point, where):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "OXWSGI_TEST_PANIC": point}
    rc, out = configtest(stage, f"WSGIScriptAlias /app {stage}/app.wsgi\n", env=env)
    assert rc != 0, out
    assert "Syntax OK" not in out, out
    assert f"internal error (panic) in {where}" in out, out
    assert "OXWSGI_TEST_PANIC" in out, out


def test_without_the_panic_variable_the_same_configuration_passes(stage):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "OXWSGI_TEST_PANIC": "elsewhere"}
    rc, out = configtest(stage, f"WSGIScriptAlias /app {stage}/app.wsgi\n", env=env)
    assert rc == 0, out
    assert "Syntax OK" in out


def test_a_panic_in_post_config_fails_start_up(stage):
    # post_config does not run for `apache2 -t`; at start-up a panic there must stop httpd
    # (in the foreground, so the exit status is httpd's own).
    from harness import procs
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "OXWSGI_TEST_PANIC": "post_config"}
    conf = stage / "httpd.conf"
    text = BASE.format(d=stage, user=paths.RUN_USER, group=paths.RUN_GROUP).replace(
        "Listen 127.0.0.1:1", f"Listen 127.0.0.1:{procs.free_port()}")
    conf.write_text(text + f"TypesConfig /etc/mime.types\nWSGIScriptAlias /app {stage}/app.wsgi\n")
    try:
        r = subprocess.run([paths.APACHE_BIN, "-f", str(conf), "-DFOREGROUND"], env=env,
                           capture_output=True, text=True, timeout=30)
    finally:
        for pid in procs.with_cmdline(str(conf)):
            procs.kill_survivors([pid])
    log = (stage / "error.log").read_text() if (stage / "error.log").exists() else ""
    out = r.stdout + r.stderr + log
    assert r.returncode != 0, out
    assert "internal error (panic) in post_config" in out, out
    assert "Configuration Failed" in out, out


def test_python_home_checked_again_against_the_final_user(stage):
    # Readable by the user configured first (www-data), not by the one a later `User`
    # line sets: only the check after the whole configuration (check_config) can see it.
    assert os.geteuid() == 0, "run the test suite as root"
    venv = stage / "private" / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    shutil.chown(stage / "private", user=paths.RUN_USER, group=paths.RUN_GROUP)
    (stage / "private").chmod(0o700)
    rc, out = configtest(stage, f"WSGIPythonHome {venv}\n")
    assert rc == 0, out
    rc, out = configtest(stage, f"WSGIPythonHome {venv}\nUser nobody\nGroup nogroup\n")
    assert rc != 0, out
    assert "is not accessible to the user the httpd children run as" in out, out
    assert "Syntax OK" not in out
