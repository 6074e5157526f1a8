"""Error paths. DESIGN.md: "an app exception, a str body, an invalid status
or a header with CR/LF is a 500 plus a traceback in the error log, and the
worker goes on serving". The `server` fixture checks after every test that
the server still answers its health check and that the log shows no crash.
"""

import json
import re
import time
import urllib.parse

import pytest
import requests

from harness.rawhttp import build_request

# Full discussion in docs/differences-from-mod_wsgi.md.
HOP_BY_HOP_CLAUSE = (
    "PEP 3333 'Other HTTP Features': apps must not generate hop-by-hop headers, and "
    "servers should check headers when start_response is called; mod_wsgi passes them on")


def get(server, target):
    return server.raw_request("GET", target, timeout=20)


def state(server, token, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        st = requests.get(server.url(f"/err/state?token={token}"), timeout=10).json()["state"]
        if st is not None or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def assert_500_with_traceback(server, r, token):
    assert r.status == 500, r
    assert r.complete, r
    log = server.wait_for_test_log(token)
    assert "Traceback" in log
    assert "AppError: oxwsgi-test" in log


# An error-level line as Apache ("[module:error]") or nginx ("[error]") write it.
ERROR_LINE = r"\[(?:[\w.-]+:)?(?:error|crit)\][^\n]*"


def assert_logged_error_naming(server, word):
    """The log got an error-level line naming the offending Python type, so
    the app's author can tell what went wrong (mod_wsgi: "TypeError: ...
    value of type str found"; oxwsgi: "item 1 is str, not bytes")."""
    server.wait_for_test_log(ERROR_LINE + word)


def assert_truncated_200(r, prefix):
    # Headers were already sent when the app failed: the only honest signal
    # left is a body the client can see is incomplete.
    assert r.status == 200, r
    assert r.body.startswith(prefix), r.body[:100]
    assert not r.complete, f"a failed response looks complete to the client: {r}"


def test_exception_before_start_response(server, token):
    assert_500_with_traceback(server, get(server, f"/err/before-start?token={token}"), token)


def test_exception_after_start_response_before_body(server, token):
    assert_500_with_traceback(server, get(server, f"/err/after-start?token={token}"), token)


def test_exception_mid_body_chunked(server, token):
    r = get(server, f"/err/mid-body?token={token}")
    assert_truncated_200(r, b"partial-")
    server.wait_for_test_log(f"AppError: oxwsgi-test mid-body {token}")
    st = state(server, token)
    assert st is not None and st["closed"] is True, "close() not called after the iterable raised"


def test_exception_mid_body_with_content_length(server, token):
    r = get(server, f"/err/mid-body?token={token}&cl=100")
    assert_truncated_200(r, b"partial-")
    assert r.framing == "length"
    server.wait_for_test_log(f"AppError: oxwsgi-test mid-body {token}")


def test_str_body_is_500(server):
    r = get(server, "/err/str-body")
    assert r.status == 500, r
    assert b"a str, not bytes" not in r.body
    assert_logged_error_naming(server, r"\bstr\b")


def test_none_body_is_500(server):
    r = get(server, "/err/none-body")
    assert r.status == 500, r
    assert_logged_error_naming(server, r"None")


@pytest.mark.parametrize("case,typename", [("str-chunk-late", "str"), ("bad-item", "int")])
def test_non_bytes_chunk_after_body_started(server, case, typename):
    # A valid first chunk may already be on the wire; the client must still
    # be able to tell the response failed.
    r = get(server, f"/err/{case}")
    if r.status == 200:
        assert not r.complete, r
    else:
        assert r.status == 500, r
    assert_logged_error_naming(server, rf"\b{typename}\b")


@pytest.mark.parametrize("status", [
    "abc",
    "2000 Too Long",
    "20 Short",
    "200OK",
    " 200 OK",
    "200 OK\r\nX-Injected: yes",
    "200 OK\nX-Injected: yes",
])
def test_invalid_status_is_500(server, status):
    r = get(server, "/err/status?s=" + urllib.parse.quote(status))
    assert r.status == 500, r
    assert not r.has_header("X-Injected")
    assert b"body of a bad status" not in r.body


def test_status_without_reason_phrase(server):
    # PEP 3333 shows the status as "999 Message here"; wsgiref.validate only
    # warns about a bare "200". Implementation-defined: mod_wsgi rejects it
    # (500), oxwsgi accepts it. Either way the client must get a valid
    # RFC 9110 status line (HTTP-version SP 3DIGIT SP [reason]).
    with server.raw() as c:
        c.send(build_request("GET", "/err/status?s=200", close=True))
        r = c.read_response()
    status_line = r.raw_head.split(b"\r\n", 1)[0]
    assert re.fullmatch(rb"HTTP/1\.[01] [1-5]\d\d [\t -~\x80-\xff]*", status_line), status_line
    if r.status == 200:
        assert r.body == b"body of a bad status" and r.complete
    else:
        assert r.status == 500, r


@pytest.mark.parametrize("case", [
    "crlf-value", "lf-value", "cr-value", "crlf-name",
    "colon-name", "space-name", "empty-name",
    "nonlatin1-value", "bytes-value", "bytes-name", "int-value",
    pytest.param("nul-value", marks=pytest.mark.modwsgi_deviation(
        "PEP 3333 / RFC 9110 §5.5: no control characters in a header value; mod_wsgi sends NUL on")),
    "soh-value", "esc-value", "us-value", "del-value", "ctl-name",
])
def test_invalid_header_is_500(server, case):
    # PEP 3333: header names are valid field-names, values are str of
    # latin-1 code points with no control characters (CR/LF included).
    r = get(server, f"/err/header?case={case}")
    assert r.status == 500, r
    assert not r.has_header("X-Injected"), "header injection reached the client"
    assert not r.has_header("X-Bad")
    assert b"body with a bad header" not in r.body


@pytest.mark.parametrize("case", ["soh-value", "del-value"])
def test_control_character_in_header_is_logged_by_name(server, case):
    r = get(server, f"/err/header?case={case}")
    assert r.status == 500, r
    if server.name != "modwsgi":
        server.wait_for_test_log(r"header X-Bad: value contains")


def test_tab_in_header_value_is_allowed(server):
    r = get(server, "/err/tabheader")
    assert r.status == 200, r
    assert r.header("X-Tab") == "a\tb"
    assert r.body == b"tab ok"


@pytest.mark.modwsgi_deviation(HOP_BY_HOP_CLAUSE)
@pytest.mark.parametrize("header", [
    "connection", "keep-alive", "transfer-encoding", "upgrade", "te", "trailers",
    "proxy-authenticate", "proxy-authorization",
])
def test_hop_by_hop_header_is_refused(server, header):
    r = get(server, f"/err/hop?h={header}")
    assert r.status == 500, r
    assert b"body with a hop-by-hop header" not in r.body


@pytest.mark.modwsgi_deviation(
    "PEP 3333 'The start_response() Callable': calling start_response again without "
    "exc_info is a fatal error; mod_wsgi accepts it and sends the second status")
def test_start_response_twice_without_exc_info_raises(server, token):
    r = get(server, f"/err/start-twice?token={token}")
    st = state(server, token)
    assert st is not None
    assert st["raised"] is not None, "second start_response without exc_info did not raise"
    assert r.status != 201, "the illegal second start_response took effect"


def test_exc_info_before_headers_sent_replaces_headers(server):
    r = get(server, "/err/exc-info-before")
    assert r.status == 500, r
    assert r.header("X-Replaced") == "yes"
    assert not r.has_header("X-Original")
    assert r.body == b"replacement body"
    assert r.complete


def test_exc_info_after_headers_sent_reraises(server, token):
    # PEP 3333: if headers were sent, start_response "must raise an error,
    # and should raise the exc_info tuple".
    r = get(server, f"/err/exc-info-after?token={token}")
    assert_truncated_200(r, b"first-chunk-")
    assert b"should-not-be-sent" not in r.body
    st = state(server, token)
    assert st == {"raised": "AppError", "same": True}
    server.wait_for_test_log(f"oxwsgi-test after-headers {token}")


def test_headers_not_sent_before_first_nonempty_chunk(server, token):
    # PEP 3333 "Buffering and Streaming": the server must not transmit the
    # headers until the first non-empty bytestring (or the iterable's end),
    # so an exception after a b"" chunk can still become a clean 500.
    r = get(server, f"/err/empty-then-raise?token={token}")
    assert r.status == 500, r
    assert r.complete
    assert not r.has_header("X-Early")
    server.wait_for_test_log(f"AppError: oxwsgi-test empty-then-raise {token}")


def test_exc_info_after_empty_chunk_replaces_headers(server):
    r = get(server, "/err/exc-info-after-empty")
    assert r.status == 503, r
    assert r.header("X-Replaced") == "yes" and not r.has_header("X-Original")
    assert r.body == b"replaced after empty chunk" and r.complete


def test_exception_in_close_is_logged_and_response_complete(server, token):
    r = get(server, f"/err/close-raises?token={token}")
    assert r.status == 200
    assert r.body == b"complete body" and r.complete
    server.wait_for_test_log(f"AppError: oxwsgi-test close-raises {token}")


def test_many_errors_then_normal_requests(server):
    # Error paths must not leak a worker's state: after a burst of failures
    # every process still serves correct responses.
    for i in range(30):
        assert get(server, f"/err/before-start?token=burst{i}").status == 500
    for _ in range(20):
        r = requests.get(server.url("/env/dump"), timeout=10)
        assert r.status_code == 200 and "environ" in json.loads(r.content)
