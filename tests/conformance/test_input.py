"""PEP 3333 "Input and Error Streams": wsgi.input as the app reads it."""

import hashlib
import json
import os
import time

import requests

from harness.rawhttp import ProtocolError, build_request, chunked_body

BINARY = bytes(range(256)) * 40 + b"tail"


def post(server, path, body, headers=None):
    r = requests.post(server.url(path), data=body, headers=headers, timeout=30)
    assert r.status_code == 200, r.text[:1000]
    return r.json()


def test_read_all_binary(server):
    d = post(server, "/env/read", BINARY)
    assert d["type"] == "bytes"
    assert d["len"] == len(BINARY)
    assert d["sha256"] == hashlib.sha256(BINARY).hexdigest()
    assert d["CONTENT_LENGTH"] == str(len(BINARY))


def test_read_n_loop_respects_size(server):
    body = b"0123456789" * 10 + b"xyz"
    d = post(server, "/env/read-n?n=7", body)
    assert d["body"] == body.decode()
    assert all(0 < s <= 7 for s in d["sizes"]), d["sizes"]


def test_read_n_loop_large_body(server):
    body = os.urandom(3 * 1024 * 1024 + 17)
    d = post(server, "/env/read-n?n=65536", body)
    assert d["len"] == len(body)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()
    assert max(d["sizes"]) <= 65536


def test_readline(server):
    body = b"line1\nline2\r\n\nno-newline-at-end"
    d = post(server, "/env/readline", body)
    assert d["lines"] == ["line1\n", "line2\r\n", "\n", "no-newline-at-end"]


def test_readline_with_size(server):
    # PEP 3333: servers "should support the optional size argument to readline()".
    d = post(server, "/env/readline?n=4", b"abcdefghij\nxy\n")
    assert d["lines"] == ["abcd", "efgh", "ij\n", "xy\n"]


def test_readline_long_line(server):
    line = b"L" * 200000 + b"\n"
    d = post(server, "/env/readline", line + b"short\n")
    assert [len(x) for x in d["lines"]] == [len(line), 6]


def test_readlines(server):
    body = b"a\nbb\nccc\n"
    d = post(server, "/env/readlines", body)
    assert d["lines"] == ["a\n", "bb\n", "ccc\n"]
    assert d["rest"] == ""


def test_readlines_with_hint_loses_nothing(server):
    # The hint is optional for implementers; whatever readlines(hint) returns,
    # it must be whole lines and the rest must stay readable.
    body = b"".join(b"line %03d\n" % i for i in range(50))
    d = post(server, "/env/readlines?hint=20", body)
    assert all(x.endswith("\n") for x in d["lines"])
    assert "".join(d["lines"]) + d["rest"] == body.decode()


def test_iteration(server):
    d = post(server, "/env/iter", b"x\ny\nz")
    assert d["lines"] == ["x\n", "y\n", "z"]


def test_read_past_eof_returns_empty_bytes(server):
    d = post(server, "/env/past-eof", b"exact body")
    assert d["len"] == 10
    assert d["after"] == ["", "", "", ""]
    assert d["after_types"] == ["bytes"] * 4
    assert d["readlines_after"] == 0


def test_mixed_reads_see_one_stream(server):
    d = post(server, "/env/mixed", b"first\n12345second\nthe rest")
    assert d["parts"] == ["first\n", "12345", "", "second\n", "the rest"]


def test_empty_post(server):
    d = post(server, "/env/read", b"")
    assert d["len"] == 0


def test_get_without_body_reads_empty(server):
    r = requests.get(server.url("/env/read"), timeout=15)
    assert r.status_code == 200
    assert r.json()["len"] == 0


def test_chunked_request_body(server):
    # WSGIChunkedRequest On (Apache) / native in nginx: the app reads the
    # de-chunked body. The request has no Content-Length field, so
    # CONTENT_LENGTH is absent or empty, or - for a server that buffered the
    # whole body first (nginx) - the true length of what the app can read.
    pieces = [b"hello ", b"chunked ", os.urandom(5000), b" world"]
    body = b"".join(pieces)
    r = server.raw_request("POST", "/env/read",
                           headers=[("Transfer-Encoding", "chunked")], body=chunked_body(pieces))
    assert r.status == 200, (r, r.body[:500])
    d = json.loads(r.body)
    assert d["len"] == len(body)
    assert d["sha256"] == hashlib.sha256(body).hexdigest()
    assert d["CONTENT_LENGTH"] in (None, "", str(len(body)))


def test_chunked_request_body_with_trailers(server):
    pieces = [b"part-one;", b"part-two"]
    r = server.raw_request("POST", "/env/read",
                           headers=[("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")],
                           body=chunked_body(pieces, trailers=[("X-Checksum", "abc123")]))
    assert r.status == 200, (r, r.body[:500])
    assert json.loads(r.body)["body"] == "part-one;part-two"


def test_chunked_request_read_by_readline(server):
    pieces = [b"line one\nli", b"ne two\n", b"three"]
    r = server.raw_request("POST", "/env/readline",
                           headers=[("Transfer-Encoding", "chunked")], body=chunked_body(pieces))
    assert r.status == 200
    assert json.loads(r.body)["lines"] == ["line one\n", "line two\n", "three"]


def test_expect_100_continue(server):
    # The client waits for "100 Continue" before sending the body.
    body = b"body sent after 100-continue"
    with server.raw() as c:
        c.send(build_request("POST", "/env/read", headers=[
            ("Content-Length", str(len(body))), ("Expect", "100-continue"),
            ("Connection", "close")]))
        interim = c.read_response("POST", skip_interim=False)
        assert interim.status == 100, interim
        c.send(body)
        r = c.read_response("POST")
    assert r.status == 200
    assert json.loads(r.body)["body"] == body.decode()


def test_unread_body_does_not_break_keepalive(server):
    # The app ignores a 100 kB body: the server must discard it, and the next
    # request on the same connection must be parsed from the right place.
    junk = b"GET /env/dump HTTP/1.1\r\n" * 4000
    with server.raw() as c:
        c.send(build_request("POST", "/env/ignore-body", body=junk))
        r1 = c.read_response("POST")
        assert r1.status == 200
        try:
            c.send(build_request("GET", "/env/read-n?n=3", close=True))
            r2 = c.read_response()
        except (ProtocolError, ConnectionError):
            # Closing the connection instead is also correct (no misparse).
            return
        assert r2.status == 200, r2
        assert json.loads(r2.body)["len"] == 0


def test_pipelined_requests_with_bodies(server):
    reqs = b"".join(build_request("POST", "/env/read", body=b"body-%d" % i) for i in range(3))
    reqs += build_request("GET", "/env/read", close=True)
    with server.raw() as c:
        c.send(reqs)
        bodies = [json.loads(c.read_response("POST").body)["body"] for _ in range(4)]
    assert bodies == ["body-0", "body-1", "body-2", ""]


def test_slow_client_body(server):
    # The body trickles in; read() must wait for all of it, not return early.
    with server.raw() as c:
        c.send(build_request("POST", "/env/read", headers=[("Content-Length", "12")], close=True))
        for piece in (b"slow", b"-bod", b"y..."):
            time.sleep(0.3)
            c.send(piece)
        r = c.read_response("POST")
    assert json.loads(r.body)["body"] == "slow-body..."
