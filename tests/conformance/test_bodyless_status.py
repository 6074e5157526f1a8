"""A body the application returns with a status that has none (204, 304) never reaches
the connection: a keep-alive client would read it as the start of the next response
(response desync). The iterable's close() is still called."""

import time

import pytest
import requests

from harness.rawhttp import build_request


def wait_closed(server, token, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = requests.get(server.url(f"/nobody/state?token={token}"), timeout=10).json()["state"]
        if st is not None or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


@pytest.mark.parametrize("code", [204, 304])
def test_body_of_bodyless_status_is_dropped(server, token, code):
    with server.raw() as c:
        c.send(build_request("GET", f"/nobody/status/{code}?token={token}"))
        first = c.read_response()
        assert first.status == code
        assert not first.has_header("Transfer-Encoding"), first.headers
        # The next response on the same connection must be the health check's, not the
        # dropped body (which looks like a response of its own).
        c.send(build_request("GET", "/health/", close=True))
        second = c.read_response()
        assert second.status == 200, second
        assert b"LEAKED" not in second.raw_head + second.body
        assert c.closed_by_peer()
    assert wait_closed(server, token) == {"closed": True}
