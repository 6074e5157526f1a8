# Error paths. Mounted at /err. Most endpoints take ?token=..., which goes
# into the exception message (so a test finds *its* traceback in the error
# log) or names a state file (so a test can see what happened inside the app).
import os
import sys

sys.dont_write_bytecode = True
from apputil import dispatch, query, read_state, respond_json, safe_token, write_state  # noqa: E402

CT = ("Content-Type", "text/plain")


class AppError(Exception):
    pass


def before_start(environ, start_response):
    raise AppError(f"oxwsgi-test before-start {query(environ)['token']}")


def after_start(environ, start_response):
    # start_response was called, but no body byte yet: headers are not sent,
    # so the server can still answer 500.
    start_response("200 OK", [CT])
    raise AppError(f"oxwsgi-test after-start {query(environ)['token']}")


class MidBody:
    """Yields one chunk, then raises; records that close() was called."""

    def __init__(self, token):
        self.token = safe_token(token)

    def __iter__(self):
        yield b"partial-"
        raise AppError(f"oxwsgi-test mid-body {self.token}")

    def close(self):
        write_state(self.token, {"closed": True, "pid": os.getpid()})


def mid_body(environ, start_response):
    q = query(environ)
    headers = [CT]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    start_response("200 OK", headers)
    return MidBody(q["token"])


def str_body(environ, start_response):
    start_response("200 OK", [CT])
    return ["a str, not bytes"]


def str_chunk_late(environ, start_response):
    start_response("200 OK", [CT])
    return [b"bytes first-", "then a str"]


def none_body(environ, start_response):
    start_response("200 OK", [CT])
    return None


def status(environ, start_response):
    start_response(query(environ)["s"], [CT])
    return [b"body of a bad status"]


HEADER_CASES = {
    "crlf-value": ("X-Bad", "a\r\nX-Injected: yes"),
    "lf-value": ("X-Bad", "a\nX-Injected: yes"),
    "cr-value": ("X-Bad", "a\rX-Injected: yes"),
    "crlf-name": ("X-Bad\r\nX-Injected", "yes"),
    "colon-name": ("X-Bad:Name", "v"),
    "space-name": ("X Bad", "v"),
    "empty-name": ("", "v"),
    "nonlatin1-value": ("X-Bad", "euro \u20ac"),
    "bytes-value": ("X-Bad", b"bytes"),
    "bytes-name": (b"X-Bad", "v"),
    "int-value": ("X-Bad", 5),
    # Control characters other than HTAB (RFC 9110 §5.5, PEP 3333).
    "nul-value": ("X-Bad", "a\x00b"),
    "soh-value": ("X-Bad", "a\x01b"),
    "esc-value": ("X-Bad", "a\x1b[31mred"),
    "us-value": ("X-Bad", "a\x1fb"),
    "del-value": ("X-Bad", "a\x7fb"),
    "ctl-name": ("X-\x01Bad", "v"),
}


def tab_header(environ, start_response):
    # HTAB is the one control character a field value may hold.
    start_response("200 OK", [CT, ("X-Tab", "a\tb")])
    return [b"tab ok"]


def bad_header(environ, start_response):
    start_response("200 OK", [CT, HEADER_CASES[query(environ)["case"]]])
    return [b"body with a bad header"]


# The set wsgiref.util.is_hop_by_hop() knows (RFC 2616 section 13.5.1).
HOP_BY_HOP = {
    "connection": ("Connection", "close"),
    "keep-alive": ("Keep-Alive", "timeout=5"),
    "transfer-encoding": ("Transfer-Encoding", "chunked"),
    "upgrade": ("Upgrade", "h2c"),
    "te": ("TE", "trailers"),
    "trailers": ("Trailers", "X-Checksum"),
    "proxy-authenticate": ("Proxy-Authenticate", "Basic"),
    "proxy-authorization": ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
}


def hop_by_hop(environ, start_response):
    start_response("200 OK", [CT, HOP_BY_HOP[query(environ)["h"]]])
    return [b"body with a hop-by-hop header"]


def start_twice(environ, start_response):
    # PEP 3333: "it is a fatal error to call start_response without the
    # exc_info argument if start_response has already been called".
    token = query(environ)["token"]
    start_response("200 OK", [CT, ("X-First", "1")])
    try:
        start_response("201 Created", [CT, ("X-Second", "1")])
        raised = None
    except Exception as e:  # noqa: BLE001 - we report what the server raised
        raised = type(e).__name__
    write_state(token, {"raised": raised})
    return [b"after second start_response"]


def exc_info_before_headers(environ, start_response):
    # Headers set but not sent: start_response with exc_info replaces them.
    start_response("200 OK", [CT, ("X-Original", "yes")])
    try:
        raise AppError("oxwsgi-test replaced")
    except AppError:
        start_response("500 Internal Server Error", [CT, ("X-Replaced", "yes")], sys.exc_info())
    return [b"replacement body"]


def exc_info_after_headers(environ, start_response):
    # Headers already sent: start_response(..., exc_info) must re-raise.
    token = query(environ)["token"]
    start_response("200 OK", [CT])

    def gen():
        yield b"first-chunk-"
        try:
            raise AppError(f"oxwsgi-test after-headers {token}")
        except AppError as original:
            try:
                start_response("500 Internal Server Error", [CT], sys.exc_info())
            except BaseException as e:  # noqa: BLE001
                write_state(token, {"raised": type(e).__name__, "same": e is original})
                raise
            write_state(token, {"raised": None})
        yield b"should-not-be-sent"
    return gen()


def empty_then_raise(environ, start_response):
    # PEP 3333: headers go out only with the first non-empty body string, so
    # after yielding b"" the server can still answer 500.
    token = query(environ)["token"]
    start_response("200 OK", [CT, ("X-Early", "1")])

    def gen():
        yield b""
        raise AppError(f"oxwsgi-test empty-then-raise {token}")
    return gen()


def exc_info_after_empty(environ, start_response):
    # Headers not sent yet (only b"" so far): start_response with exc_info
    # must replace them instead of re-raising.
    start_response("200 OK", [CT, ("X-Original", "yes")])

    def gen():
        yield b""
        try:
            raise AppError("oxwsgi-test replaced late")
        except AppError:
            start_response("503 Service Unavailable", [CT, ("X-Replaced", "yes")], sys.exc_info())
        yield b"replaced after empty chunk"
    return gen()


class CloseRaises:
    def __init__(self, token):
        self.token = token

    def __iter__(self):
        return iter([b"complete body"])

    def close(self):
        raise AppError(f"oxwsgi-test close-raises {self.token}")


def close_raises(environ, start_response):
    start_response("200 OK", [CT, ("Content-Length", "13")])
    return CloseRaises(query(environ)["token"])


def bad_item(environ, start_response):
    start_response("200 OK", [CT])
    return [b"ok-", 42]


def state(environ, start_response):
    return respond_json(start_response, {"state": read_state(query(environ)["token"])})


application = dispatch({
    "before-start": before_start,
    "after-start": after_start,
    "mid-body": mid_body,
    "str-body": str_body,
    "str-chunk-late": str_chunk_late,
    "none-body": none_body,
    "status": status,
    "header": bad_header,
    "tabheader": tab_header,
    "hop": hop_by_hop,
    "start-twice": start_twice,
    "exc-info-before": exc_info_before_headers,
    "exc-info-after": exc_info_after_headers,
    "close-raises": close_raises,
    "empty-then-raise": empty_then_raise,
    "exc-info-after-empty": exc_info_after_empty,
    "bad-item": bad_item,
    "state": state,
})
