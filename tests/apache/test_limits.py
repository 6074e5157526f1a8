"""LimitRequestBody is enforced before the application runs when the Content-Length
already says the body is too large, as mod_wsgi does (through `ap_setup_client_block`):
an application that never reads its body must not answer 200 to such a request.

Runs against mod_oxwsgi and, as the reference, Debian's mod_wsgi."""

import json
import time

import pytest

from harness import paths
from harness.apache import ApacheServer
from harness.rawhttp import build_request, chunked_body

LIMIT = 1000


class LimitServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"apache-limits-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        return super().config_text() + f"\nLimitRequestBody {LIMIT}\n"


@pytest.fixture(scope="module", params=["oxwsgi", "modwsgi"])
def srv(request):
    if request.param == "modwsgi" and not paths.MODWSGI_SO.exists():
        pytest.fail(f"{paths.MODWSGI_SO} missing: apt-get install libapache2-mod-wsgi-py3")
    s = LimitServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def app_ran(srv, token):
    return (srv.stage.state / f"{token}.json").exists()


def post(srv, token, body, headers=()):
    with srv.raw() as c:
        c.send(build_request("POST", f"/resp/close?token={token}", headers=list(headers), body=body, close=True))
        return c.read_response("POST")


def test_body_within_the_limit_reaches_the_app(srv):
    token = f"within{int(time.time() * 1e6)}"
    r = post(srv, token, b"x" * LIMIT)
    assert r.status == 200, r
    deadline = time.monotonic() + 5
    while not app_ran(srv, token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads((srv.stage.state / f"{token}.json").read_text())["closes"] == 1


def test_content_length_over_the_limit_is_413_before_the_app(srv):
    token = f"over{int(time.time() * 1e6)}"
    r = post(srv, token, b"x" * (LIMIT + 1))
    assert r.status == 413, r
    time.sleep(0.2)
    assert not app_ran(srv, token), "the application ran for a body over LimitRequestBody"
    assert srv.health()


def test_content_length_over_the_limit_without_the_body_sent(srv):
    # The client announces a huge body and waits (Expect: 100-continue): the answer is 413,
    # without 100 Continue, and without the application running.
    token = f"expect{int(time.time() * 1e6)}"
    with srv.raw() as c:
        c.send(build_request("POST", f"/resp/close?token={token}",
                             headers=[("Content-Length", str(10 * 1024 * 1024)), ("Expect", "100-continue")],
                             close=True))
        r = c.read_response("POST", skip_interim=False)
    assert r.status == 413, r
    time.sleep(0.2)
    assert not app_ran(srv, token)


def test_chunked_body_over_the_limit_fails_when_read(srv):
    # A chunked body's size is known only while reading it: the application that reads it
    # gets an error (500 here), never the whole body.
    r = None
    with srv.raw() as c:
        c.send(build_request("POST", "/env/read", headers=[("Transfer-Encoding", "chunked")],
                             body=chunked_body([b"y" * 600, b"y" * 600]), close=True))
        r = c.read_response("POST")
    assert r.status in (413, 500), r
