"""Error-log lines written for a request (tracebacks, wsgi.errors) end with the request's
context, as nginx's own lines do: `, client: …, server: …, request: "…"`."""

import re
import uuid

import pytest
import requests

from custom import CustomNginx

FAILING_APP = """
def application(environ, start_response):
    token = environ['QUERY_STRING']
    environ['wsgi.errors'].write('oxwsgi-test errors line %s\\n' % token)
    raise RuntimeError('oxwsgi-test traceback %s' % token)
"""

LOGGING_APP = """
import logging, sys
log = logging.getLogger('oxwsgi.test.reqlog')

def application(environ, start_response):
    token = environ['QUERY_STRING']
    log.warning('oxwsgi-test logging line %s', token)
    print('oxwsgi-test print line %s' % token)
    print('oxwsgi-test stderr line %s' % token, file=sys.stderr)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'ok']
"""

LOCATIONS = """
        location /fail {{ wsgi_app {d}/fail.wsgi; }}
        location /logging {{ wsgi_app {d}/logging.wsgi; }}
"""


class LogNginx(CustomNginx):
    def config_text(self):
        text = super().config_text()
        (self.extra / "fail.wsgi").write_text(FAILING_APP)
        (self.extra / "logging.wsgi").write_text(LOGGING_APP)
        return text


@pytest.fixture(scope="module")
def srv():
    s = LogNginx("nginx-reqlog", locations=LOCATIONS)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def lines_with(text, needle):
    return [line for line in text.splitlines() if needle in line]


def test_traceback_lines_carry_the_request(srv):
    token = uuid.uuid4().hex[:16]
    since = srv.log_size()
    r = requests.get(srv.url(f"/fail/some/path?{token}"), timeout=10)
    assert r.status_code == 500
    log = srv.wait_for_log(f"RuntimeError: oxwsgi-test traceback {token}", since=since)
    request = f'request: "GET /fail/some/path?{token} HTTP/1.1"'
    tb = lines_with(log, f"RuntimeError: oxwsgi-test traceback {token}")
    assert tb, log
    for line in tb:
        assert ", client: 127.0.0.1, server: 127.0.0.1, " in line, line
        assert line.rstrip().endswith(request) or (request + ",") in line, line
    # Every line of the traceback, not only the last one.
    first = lines_with(log, "Traceback (most recent call last)")
    assert first and all(request in line for line in first), first
    errors = lines_with(log, f"oxwsgi-test errors line {token}")
    assert errors and all(re.search(r", client: 127\.0\.0\.1, server: ", x) and request in x for x in errors), errors


def test_logging_and_print_lines_carry_the_request(srv):
    token = uuid.uuid4().hex[:16]
    since = srv.log_size()
    r = requests.get(srv.url(f"/logging/x?{token}"), timeout=10)
    assert r.status_code == 200
    log = srv.wait_for_log(f"oxwsgi-test stderr line {token}", since=since)
    request = f'request: "GET /logging/x?{token} HTTP/1.1"'
    for what in ("logging", "print", "stderr"):
        found = lines_with(log, f"oxwsgi-test {what} line {token}")
        assert found, (what, log)
        assert all(", client: 127.0.0.1, server: " in x and request in x for x in found), found
