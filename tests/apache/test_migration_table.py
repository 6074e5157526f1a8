"""docs/mod_wsgi-migration.md matches the module: every directive of the module's table
(apache-module/mod_oxwsgi.c, which has every directive of mod_wsgi 4.9.4) has a row; the
rows marked refused are exactly the ones `apache2 -t` refuses, by name; every
WSGIDaemonProcess option of mod_wsgi 4.9.4 has a row, and those marked refused are refused
by `apache2 -t` with the reason the table gives."""

import re
import subprocess

import pytest

from harness import paths, procs

ROOT = paths.TESTS_DIR.parent
DOC = (ROOT / "docs" / "mod_wsgi-migration.md").read_text()
SHIM = (ROOT / "apache-module" / "mod_oxwsgi.c").read_text()

# mod_wsgi 4.9.4's WSGIDaemonProcess options (src/server/mod_wsgi.c, wsgi_add_daemon_process).
MODWSGI_DAEMON_OPTIONS = """
chroot connect-timeout cpu-priority cpu-time-limit deadlock-timeout display-name eviction-timeout
graceful-timeout group header-buffer-size home inactivity-timeout lang listen-backlog locale
maximum-requests memory-limit newrelic-config-file newrelic-environment processes python-eggs
python-home python-path queue-timeout receive-buffer-size request-timeout response-buffer-size
response-socket-timeout restart-interval script-group script-user send-buffer-size server-metrics
shutdown-timeout socket-timeout socket-user stack-size startup-timeout supplementary-groups threads
umask user virtual-memory-limit""".split()


def rows(section):
    """{name: status} of the table under the heading `section`."""
    text = DOC.split(section, 1)[1].split("\n## ", 1)[0]
    out = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.split("|")]
        for name in re.findall(r"`([\w-]+)`", cells[1]):
            out[name] = cells[2]
    return out


DIRECTIVES = rows("## Every directive of mod_wsgi 4.9")
OPTIONS = rows("## `WSGIDaemonProcess` options (mod_wsgi 4.9)")
IN_TABLE = set(re.findall(r'DIRECTIVE\("(WSGI\w+)"', SHIM))
UNSUPPORTED = set(re.findall(r'UNSUPPORTED\("(WSGI\w+)"\)', SHIM))


def configtest(tmp_path, line):
    conf = tmp_path / "httpd.conf"
    so = paths.MODULE_DIR / "mod_oxwsgi.so"
    conf.write_text(f"""\
ServerRoot "{tmp_path}"
ServerName 127.0.0.1
Listen 127.0.0.1:{procs.free_port()}
PidFile "{tmp_path}/httpd.pid"
DefaultRuntimeDir "{tmp_path}"
ErrorLog "{tmp_path}/error.log"
LoadModule mpm_event_module {paths.APACHE_MODULES}/mod_mpm_event.so
LoadModule authz_core_module {paths.APACHE_MODULES}/mod_authz_core.so
LoadModule wsgi_module {so}
User {paths.RUN_USER}
Group {paths.RUN_GROUP}
{line}
""")
    r = subprocess.run([paths.APACHE_BIN, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    return r.returncode, r.stdout + r.stderr


def test_every_directive_of_the_module_has_a_row():
    assert (IN_TABLE | UNSUPPORTED) - set(DIRECTIVES) == set()


def test_refused_rows_are_the_refused_directives():
    refused = {d for d, status in DIRECTIVES.items() if status == "refused"}
    assert refused == UNSUPPORTED


@pytest.mark.parametrize("directive", sorted(UNSUPPORTED))
def test_refused_directive_fails_configtest_by_name(tmp_path, directive):
    rc, out = configtest(tmp_path, f"{directive} x")
    assert rc != 0 and directive in out, out


def test_every_daemon_option_of_mod_wsgi_has_a_row():
    assert set(MODWSGI_DAEMON_OPTIONS) - set(OPTIONS) == set()


@pytest.mark.parametrize("option", sorted(o for o in MODWSGI_DAEMON_OPTIONS))
def test_daemon_option_is_read_as_the_table_says(tmp_path, option):
    value = {"user": paths.RUN_USER, "group": paths.RUN_GROUP, "supplementary-groups": paths.RUN_GROUP,
             "home": "/", "python-home": str(paths.VENV), "python-path": "/", "python-eggs": "/tmp",
             "umask": "0007", "lang": "C.UTF-8", "locale": "C.UTF-8", "display-name": "x",
             "chroot": "/", "script-user": "root", "script-group": "root", "socket-user": "root",
             "newrelic-config-file": "/tmp/n.ini", "newrelic-environment": "x",
             "server-metrics": "On"}.get(option, "1")
    rc, out = configtest(tmp_path, f"WSGIDaemonProcess g {option}={value}")
    if OPTIONS[option] == "refused":
        assert rc != 0 and f'option "{option}" is not supported by oxwsgi: ' in out, out
    else:
        assert rc == 0, out
