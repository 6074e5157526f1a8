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

LOCATIONS = """
        location /fail {{ wsgi_app {d}/fail.wsgi; }}
"""


class LogNginx(CustomNginx):
    def config_text(self):
        text = super().config_text()
        (self.extra / "fail.wsgi").write_text(FAILING_APP)
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
