"""PEP 3333 responses: iterables, write(), close(), HEAD, status lines,
headers and Content-Length, over the wire as a raw client sees them."""

import concurrent.futures
import json
import time

import pytest
import requests

from harness.rawhttp import ProtocolError, build_request


def get(server, target, method="GET", version="HTTP/1.1", headers=()):
    return server.raw_request(method, target, version=version, headers=headers)


def wait_state(server, path, timeout=15):
    """Poll a state endpoint until the app recorded something."""
    deadline = time.monotonic() + timeout
    while True:
        st = requests.get(server.url(path), timeout=10).json()["state"]
        if st is not None or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_generator_with_empty_chunks(server):
    # Empty strings yielded mid-body must not end the response early.
    r = get(server, "/resp/generator")
    assert r.status == 200
    assert r.complete
    assert r.body == b"alpha-beta-gamma"


def test_list_body(server):
    r = get(server, "/resp/list")
    assert (r.status, r.body, r.complete) == (200, b"one,two,three", True)


def test_unknown_length_uses_chunked_on_http11(server):
    with server.raw() as c:
        c.send(build_request("GET", "/resp/generator"))
        r = c.read_response()
        assert r.framing == "chunked", r.headers
        # The connection stays usable after a chunked response.
        c.send(build_request("GET", "/resp/list", close=True))
        assert c.read_response().body == b"one,two,three"


def test_unknown_length_on_http10_is_close_delimited(server):
    r = get(server, "/resp/generator", version="HTTP/1.0")
    assert r.framing in ("close", "length")
    assert r.body == b"alpha-beta-gamma"
    assert r.complete


def test_write_callable_comes_before_iterable(server):
    r = get(server, "/resp/write")
    assert r.body == b"w1-w2-iter1-iter2"


def test_write_only(server):
    r = get(server, "/resp/write-only")
    assert r.body == b"".join(b"line %d\n" % i for i in range(5))


def test_close_called_once_after_normal_completion(server, token):
    r = get(server, f"/resp/close?token={token}")
    assert r.body == b"closing-iterable"
    st = wait_state(server, f"/resp/closed?token={token}")
    assert st is not None, "close() of the response iterable was never called"
    assert st["closes"] == 1
    assert st["chunks_sent"] == 2


def test_close_called_when_client_disconnects(server, token):
    # The app streams until the client goes away; the server must notice
    # (a failed write) and still call close() on the iterable.
    with server.raw() as c:
        c.send(build_request("GET", f"/resp/endless?token={token}"))
        head = c.read_head()
        assert head.status == 200
        got = len(c.buf)
        while got < 256 * 1024:
            got += len(c.sock.recv(65536))
    st = wait_state(server, f"/resp/closed?token={token}", timeout=25)
    assert st is not None, "close() not called after the client disconnected"
    assert st["closes"] == 1
    # It stopped because of the disconnect, not at the app's 30 s limit.
    assert st["chunks_sent"] < 2000


def test_write_raises_oserror_when_client_disconnects(server, token):
    with server.raw() as c:
        c.send(build_request("GET", f"/resp/endless-write?token={token}"))
        assert c.read_head().status == 200
        got = len(c.buf)
        while got < 256 * 1024:
            got += len(c.sock.recv(65536))
    st = wait_state(server, f"/resp/closed?token={token}", timeout=25)
    assert st is not None, "write() never failed after the client disconnected"
    assert st["raised"] is not None and st["oserror"] is True, st
    assert st["chunks_sent"] < 2000


def test_head_sends_no_body(server):
    with server.raw() as c:
        c.send(build_request("HEAD", "/resp/head-body", close=True))
        r = c.read_response("HEAD")
        assert r.status == 200
        assert r.header("X-Method-Seen") == "HEAD"
        # Whatever the headers say, not one body byte may follow.
        assert c.read_until_close() == b""


def test_head_then_get_on_one_connection(server):
    with server.raw() as c:
        c.send(build_request("HEAD", "/resp/head-generator"))
        r1 = c.read_response("HEAD")
        assert r1.status == 200 and r1.header("X-Method-Seen") == "HEAD"
        c.send(build_request("GET", "/resp/head-generator", close=True))
        r2 = c.read_response()
        assert r2.body == b"chunk-achunk-b"


def test_204_and_304_have_no_body_and_keep_framing(server):
    with server.raw() as c:
        for code in (204, 304):
            c.send(build_request("GET", f"/resp/status?code={code}"))
            r = c.read_response()
            assert r.status == code
            assert r.header("X-Status-App") == str(code)
            assert not r.has_header("Transfer-Encoding"), r.headers
            assert r.header("Content-Length") in (None, "0")
        c.send(build_request("GET", "/resp/list", close=True))
        assert c.read_response().body == b"one,two,three"


def test_custom_reason_phrase(server):
    r = get(server, "/resp/custom-reason")
    assert (r.status, r.reason) == (299, "Custom Reason Here")


def test_status_codes(server):
    for code in (200, 404, 410):
        r = get(server, f"/resp/status?code={code}")
        assert r.status == code


def test_multiple_set_cookie_headers(server):
    r = get(server, "/resp/cookies")
    assert r.header_all("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/; HttpOnly",
                                          "c=3, with comma; Path=/"]


def test_large_header_value(server):
    r = get(server, "/resp/large-header?size=16000")
    assert r.status == 200
    assert len(r.header("X-Large")) == 16000
    assert r.header("X-Large").startswith("0123456789abcdef")


def test_many_headers(server):
    r = get(server, "/resp/many-headers?count=100")
    assert r.status == 200
    for i in range(100):
        assert r.header(f"X-Many-{i}") == f"value-{i}"


def test_header_names_and_values_preserved(server):
    r = get(server, "/resp/headers")
    assert r.header("x-mixed-case") == "Value  With  Spaces"
    # PEP 3333 header values are latin-1: "é" goes out as the byte E9.
    assert b"\r\nX-Latin1: caf\xe9\r\n" in r.raw_head.replace(b"x-latin1", b"X-Latin1")


def test_content_length_shorter_than_body_is_honoured(server):
    # Declares 10, yields 20: exactly 10 bytes may go out, and the surplus
    # must not be read as the start of the next response.
    with server.raw() as c:
        c.send(build_request("GET", "/resp/cl?declared=10&actual=20"))
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"abcdefghij"
        try:
            c.send(build_request("GET", "/resp/list", close=True))
            nxt = c.read_response()
        except (ProtocolError, ConnectionError):
            return  # closing the connection instead is also correct
        assert nxt.status == 200 and nxt.body == b"one,two,three", nxt


def test_content_length_longer_than_body_is_visibly_truncated(server):
    # Declares 20, yields 5: the client must see a truncated body (the
    # connection closes before 20 bytes), not hang and not get padding.
    with server.raw(timeout=20) as c:
        c.send(build_request("GET", "/resp/cl?declared=20&actual=5"))
        t0 = time.monotonic()
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"abcde"
        assert not r.complete
        assert time.monotonic() - t0 < 15


def test_keepalive_many_requests(server):
    paths = ["/resp/list", "/resp/generator", "/resp/write", "/resp/status?code=204",
             "/resp/cookies"] * 4
    with server.raw() as c:
        for p in paths:
            c.send(build_request("GET", p))
            r = c.read_response()
            assert r.status in (200, 204), (p, r)


def test_pipelining(server):
    reqs = (build_request("GET", "/resp/list") + build_request("GET", "/resp/generator")
            + build_request("GET", "/resp/write", close=True))
    with server.raw() as c:
        c.send(reqs)
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"one,two,three", b"alpha-beta-gamma", b"w1-w2-iter1-iter2"]


def test_concurrent_requests_run_in_parallel(server):
    # 8 requests of 0.5 s each: a server that serialises them needs 4 s.
    def one(_):
        return requests.get(server.url("/resp/sleep?ms=500"), timeout=30).json()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(8)))
    elapsed = time.monotonic() - t0
    assert len(results) == 8
    assert elapsed < 2.5, f"8 x 0.5 s requests took {elapsed:.2f} s"


def test_fast_request_and_static_file_answer_while_8_requests_sleep(server):
    # Isolation (issue 14): requests that block in the application hold back nobody else.
    # (The prefork flavour starts 12 children and keeps them idle for this: prefork serves
    # one request per process, and spawning more takes a maintenance cycle of a second.)
    def slow(_):
        t0 = time.monotonic()
        r = requests.get(server.url("/resp/sleep?ms=1500"), timeout=30)
        return r, time.monotonic() - t0
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        sleeping = [ex.submit(slow, i) for i in range(8)]
        time.sleep(0.4)  # the 8 are sleeping in the application now
        worst = 0.0
        for _ in range(5):
            for path, body in (("/health/", None), ("/static.txt", "static file served by the server\n")):
                t0 = time.monotonic()
                r = requests.get(server.url(path), timeout=30)
                worst = max(worst, time.monotonic() - t0)
                assert r.status_code == 200, (path, r.status_code)
                assert body is None or r.text == body
        done = [f.result() for f in sleeping]
    assert all(r.status_code == 200 and took >= 1.4 for r, took in done), [(r.status_code, took) for r, took in done]
    print(f"\n[{server.name}] slowest fast/static request while 8 requests sleep: {worst * 1000:.1f} ms")
    assert worst < 0.1, f"a fast request or the static file took {worst * 1000:.0f} ms while 8 requests slept"


@pytest.mark.parametrize("size", [100, 8192, 100_000])
def test_streamed_chunk_is_delivered_before_the_next_is_produced(server, size):
    # A generator's chunk must go out as soon as it is yielded: an app that yields and then
    # waits (streaming, server-sent events) must not have its data held back by the server.
    with server.raw(timeout=20) as c:
        c.send(build_request("GET", f"/resp/trickle?size={size}&pause=1.5", close=True))
        t0 = time.monotonic()
        got = b""
        while b"\r\n\r\n" not in got or got.split(b"\r\n\r\n", 1)[1].count(b"a") < size:
            data = c.sock.recv(65536)
            assert data, "connection closed early"
            got += data
        first = time.monotonic() - t0
        assert b"b" not in got.split(b"\r\n\r\n", 1)[1]
    assert first < 1.0, f"the first {size}-byte chunk arrived after {first:.2f}s, not before the pause ended"
