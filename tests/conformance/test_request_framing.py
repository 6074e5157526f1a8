"""Request framing the server must settle before the application runs.

A `Transfer-Encoding` other than exactly one `chunked` is how requests are smuggled past
a proxy that frames the body differently from the server behind it: it must be refused
before the application sees it (mod_wsgi answers 501, through `ap_setup_client_block`).
The side effect of the application running -- `/resp/close?token=T` records its close()
in the state directory -- must not appear.

Also: under Apache, `SERVER_NAME` for a bracketed IPv6 `Host` keeps its brackets, as
mod_wsgi gives it (httpd itself strips them in `r->hostname`).
"""

import json
import time

import pytest

from harness.rawhttp import RawConnection, build_request, chunked_body

BODY = chunked_body([b"hello"])


def app_ran(server, token):
    """Whether /resp/close?token=`token` ran (its close() writes the state file)."""
    return (server.stage.state / f"{token}.json").exists()


def send(server, headers, token, body=BODY):
    with server.raw() as c:
        c.send(build_request("POST", f"/resp/close?token={token}", headers=headers, body=body, close=True))
        return c.read_response("POST")


def test_one_chunked_transfer_coding_reaches_the_app(server, token):
    # The control case: the same request with a valid framing runs the application.
    r = send(server, [("Transfer-Encoding", "chunked")], token)
    assert r.status == 200, r
    assert r.body == b"closing-iterable"
    deadline = time.monotonic() + 5
    while not app_ran(server, token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads((server.stage.state / f"{token}.json").read_text())["closes"] == 1


# What Debian's apache2 + mod_wsgi 4.9 answers (OXWSGI_SERVERS=modwsgi): 501 from
# ap_setup_client_block for every coding list but a lone "chunked"; nginx answers 501
# for an unknown coding and 400 for a repeated header line.
@pytest.mark.parametrize("headers", [
    [("Transfer-Encoding", "chunked, chunked")],
    [("Transfer-Encoding", "gzip, chunked")],
    [("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
    [("Transfer-Encoding", "identity, chunked")],
], ids=["chunked-twice", "gzip-chunked", "two-header-lines", "identity-chunked"])
def test_other_transfer_codings_are_refused_before_the_app(server, token, headers):
    r = send(server, headers, token)
    if server.kind == "apache":
        assert r.status == 501, r
    else:
        assert r.status in (400, 501), r
    time.sleep(0.2)  # a wrongly started application would have finished by now
    assert not app_ran(server, token), f"the application ran for {headers}"
    assert server.health()


@pytest.mark.parametrize("host, expected", [
    ("[::1]:8080", "[::1]"),
    ("[::1]", "[::1]"),
    ("[2001:db8::7]:80", "[2001:db8::7]"),
])
def test_ipv6_host_keeps_its_brackets_in_server_name(server, host, expected):
    with RawConnection(server.host, server.port) as c:
        c.send(build_request("GET", "/env/dump", host=host, close=True))
        r = c.read_response("GET")
    assert r.status == 200, r
    env = json.loads(r.body)["environ"]
    if server.kind == "apache":
        assert env["SERVER_NAME"]["value"] == expected
    else:
        # nginx's SERVER_NAME is the configured `server_name` (as in its fastcgi_params),
        # whatever the Host header says.
        assert env["SERVER_NAME"]["value"] == "127.0.0.1"
    assert env["HTTP_HOST"]["value"] == host
