"""Daemon-mode directive mistakes fail `apache2 -t` with one precise message each; a valid
daemon configuration passes (and `-t` starts no process)."""

import os
import subprocess

import pytest

from harness import paths
from apache.test_configtest import configtest, stage  # noqa: F401 (fixture)


def test_a_daemon_configuration_passes_and_starts_nothing(stage):  # noqa: F811
    rc, out = configtest(stage, f"""
WSGIDaemonProcess site processes=2 threads=15 user={paths.RUN_USER} group={paths.RUN_GROUP} umask=0007 \\
    home={stage} python-home={paths.VENV} python-path={stage} python-eggs=/tmp lang=C.UTF-8 locale=C.UTF-8 \\
    display-name=%{{GROUP}} maximum-requests=1000 restart-interval=3600 inactivity-timeout=300 \\
    request-timeout=60 graceful-timeout=15 eviction-timeout=0 shutdown-timeout=5 deadlock-timeout=300 \\
    queue-timeout=45 connect-timeout=15 socket-timeout=60 listen-backlog=100 header-buffer-size=32768 \\
    response-buffer-size=65536 stack-size=524288 memory-limit=1000000000 virtual-memory-limit=2000000000 \\
    cpu-time-limit=3600
WSGIDaemonProcess other
WSGIProcessGroup site
WSGIScriptAlias /app {stage}/app.wsgi process-group=site application-group=%{{GLOBAL}}
WSGIScriptAlias /env {stage}/app.wsgi process-group=%{{ENV:GROUP}}
WSGIImportScript {stage}/app.wsgi process-group=other application-group=%{{GLOBAL}}
WSGISocketPrefix run/wsgi
WSGIRestrictEmbedded On
""")
    assert rc == 0, out
    assert "Syntax OK" in out
    assert not list(stage.glob("**/*.sock")), "apache2 -t created a daemon socket"


@pytest.mark.parametrize("directive, message", [
    ("WSGIScriptAlias /app {d}/app.wsgi process-group=nowhere", 'process group "nowhere" is not defined'),
    ("WSGIProcessGroup later\nWSGIDaemonProcess earlier", 'process group "later" is not defined'),
    ("WSGIImportScript {d}/app.wsgi process-group=ghost application-group=%{{GLOBAL}}", 'process group "ghost" is not defined'),
    ("WSGIDaemonProcess site\nWSGIDaemonProcess site threads=2", 'a process group named "site" is already defined'),
    ("WSGIDaemonProcess site user=no-such-user-oxw", 'user "no-such-user-oxw" does not exist'),
    ("WSGIDaemonProcess site group=no-such-group-oxw", 'group "no-such-group-oxw" does not exist'),
    ("WSGIDaemonProcess site supplementary-groups=no-such-group-oxw", 'supplementary group "no-such-group-oxw" does not exist'),
    ("WSGIDaemonProcess site chroot=/srv", 'option "chroot" is not supported by oxwsgi'),
    ("WSGIDaemonProcess site script-user=bob", 'option "script-user" is not supported by oxwsgi'),
    ("WSGIDaemonProcess site frobnicate=1", 'unknown option "frobnicate"'),
    ("WSGIDaemonProcess site processes=0", "processes must be a whole number of at least 1"),
    ("WSGIDaemonProcess site request-timeout=soon", "request-timeout must be a number of seconds"),
    ("WSGIDaemonProcess site umask=999", "umask must be octal"),
    ("WSGIDaemonProcess site python-home={d}/nowhere", "python-home: {d}/nowhere is not a directory"),
    ("WSGIDaemonProcess site python-path={d}/nowhere", "python-path {d}/nowhere is not a directory"),
    ("WSGIProcessGroup %{{RESOURCE}}", "is not supported: use a name, %{{GLOBAL}} or %{{ENV:variable}}"),
    ("<VirtualHost 127.0.0.1:1>\nWSGIRestrictEmbedded On\n</VirtualHost>", "cannot occur within a <VirtualHost>"),
])
def test_daemon_mistakes_fail_configtest(stage, directive, message):  # noqa: F811
    rc, out = configtest(stage, directive.format(d=stage) + "\n")
    assert rc != 0, out
    assert message.format(d=stage) in out, out
    assert "Syntax OK" not in out


def test_python_home_unreadable_by_the_daemon_user_is_refused(stage):  # noqa: F811
    assert os.geteuid() == 0, "run the test suite as root"
    venv = stage / "private" / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)], check=True)
    (stage / "private").chmod(0o700)
    rc, out = configtest(stage, f"WSGIDaemonProcess site user=nobody python-home={venv}\n")
    assert rc != 0, out
    assert "is not accessible to the daemon's user" in out, out
    assert "user nobody cannot enter" in out, out
