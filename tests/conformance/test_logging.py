"""wsgi.errors, Python logging and the standard streams end up in the
server's error log (DESIGN.md: "wsgi.errors and Python logging go to the
server's error log")."""

import requests


def hit(server, path, token):
    r = requests.get(server.url(f"{path}?token={token}"), timeout=10)
    assert r.status_code == 200, r.text[:300]


def test_wsgi_errors_write_and_writelines(server, token):
    hit(server, "/log/wsgi-errors", token)
    log = server.wait_for_test_log(f"writelines-2 {token}")
    assert f"oxwsgi-test wsgi.errors write {token}" in log
    assert f"oxwsgi-test wsgi.errors writelines-1 {token}" in log
    # One message per log line: the newline ends an entry.
    lines = [x for x in log.splitlines() if token in x]
    assert len(lines) == 3, lines


def test_python_logging_warning_and_error(server, token):
    hit(server, "/log/logging", token)
    log = server.wait_for_test_log(f"oxwsgi-test logging error {token}")
    assert f"oxwsgi-test logging warning {token}" in log


def test_stderr_print(server, token):
    hit(server, "/log/std", token)
    server.wait_for_test_log(f"oxwsgi-test stderr print {token}")


def test_stdout_print(server, token):
    # mod_wsgi 4.x sends sys.stdout to the error log too; apps ported from it
    # rely on print() debugging showing up there.
    hit(server, "/log/std", token)
    server.wait_for_test_log(f"oxwsgi-test stdout print {token}")
