# The response side of PEP 3333: iterables, write(), close(), status lines,
# headers, Content-Length handling. Mounted at /resp.
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
from apputil import dispatch, query, read_state, respond_json, safe_token, write_state  # noqa: E402

GEN_CHUNKS = [b"alpha-", b"", b"beta-", b"", b"gamma"]


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        # Empty strings in the middle must not end the body (a naive server
        # would emit them as the terminating zero-size chunk).
        for c in GEN_CHUNKS:
            yield c
    return gen()


def as_list(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one,", b"two,", b"three"]


def write_then_iter(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"w1-")
    write(b"w2-")
    # PEP 3333: data passed to write() is sent before the returned iterable.
    return [b"iter1-", b"iter2"]


def write_only(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(5):
        write(b"line %d\n" % i)
    return []


class Recorded:
    """An iterable whose close() is recorded in the state dir, counted, so a
    follow-up request (maybe served by another process) can check that the
    server called it exactly once."""

    def __init__(self, token, chunks, delay=0.0, limit_s=None):
        self.token = safe_token(token)
        self.chunks = chunks
        self.delay = delay
        self.limit_s = limit_s
        self.sent = 0

    def __iter__(self):
        start = time.monotonic()
        for c in self.chunks:
            if self.limit_s is not None and time.monotonic() - start > self.limit_s:
                return
            if self.delay:
                time.sleep(self.delay)
            self.sent += 1
            yield c

    def close(self):
        old = read_state(self.token) or {"closes": 0}
        write_state(self.token, {"closes": old["closes"] + 1, "pid": os.getpid(),
                                 "chunks_sent": self.sent})


def close_recorded(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Recorded(query(environ)["token"], [b"closing-", b"iterable"])


def endless(environ, start_response):
    # Streams until the client goes away (bounded to 30 s so a broken server
    # cannot keep a worker forever). Used to check close() after disconnect.
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunk = b"e" * 65536
    return Recorded(query(environ)["token"], iter(lambda: chunk, None), delay=0.005, limit_s=30)


def endless_write(environ, start_response):
    # Like endless, through write(): once the client is gone, write() must
    # raise (DESIGN.md: OSError), which is recorded before it propagates.
    token = safe_token(query(environ)["token"])
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    chunk = b"w" * 65536
    start = time.monotonic()
    sent = 0
    try:
        while time.monotonic() - start < 30:
            write(chunk)
            sent += 1
            time.sleep(0.005)
    except BaseException as e:
        write_state(token, {"raised": type(e).__name__, "oserror": isinstance(e, OSError),
                            "chunks_sent": sent})
        raise
    write_state(token, {"raised": None, "chunks_sent": sent})
    return []


def closed(environ, start_response):
    return respond_json(start_response, {"state": read_state(query(environ)["token"])})


REASONS = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found",
           299: "Custom Reason Here", 410: "Gone"}


def status(environ, start_response):
    code = int(query(environ)["code"])
    headers = [("X-Status-App", str(code))]
    if code == 304:
        headers.append(("ETag", '"v1"'))
    start_response(f"{code} {REASONS[code]}", headers)
    return [] if code in (204, 304) else [b"status body"]


def head_body(environ, start_response):
    # Sends a body even for HEAD; PEP 3333 leaves it to the server to drop it.
    body = b"body that HEAD must not transmit"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                              ("X-Method-Seen", environ["REQUEST_METHOD"])])
    return [body]


def head_generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Method-Seen", environ["REQUEST_METHOD"])])
    return (c for c in [b"chunk-a", b"chunk-b"])


def cookies(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Set-Cookie", "a=1; Path=/"),
                              ("Set-Cookie", "b=2; Path=/; HttpOnly"),
                              ("Set-Cookie", "c=3, with comma; Path=/")])
    return [b"cookies"]


def large_header(environ, start_response):
    size = int(query(environ)["size"])
    value = ("0123456789abcdef" * (size // 16 + 1))[:size]
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Large", value)])
    return [b"large"]


def many_headers(environ, start_response):
    count = int(query(environ)["count"])
    start_response("200 OK", [("Content-Type", "text/plain")]
                   + [(f"X-Many-{i}", f"value-{i}") for i in range(count)])
    return [b"many"]


def content_length(environ, start_response):
    # Content-Length that lies in either direction.
    q = query(environ)
    declared, actual = int(q["declared"]), int(q["actual"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(declared))])
    data = bytes(ord("a") + i % 26 for i in range(actual))
    # In several pieces, so a server must count across chunks.
    return [data[i:i + 3] for i in range(0, len(data), 3)]


def custom_reason(environ, start_response):
    start_response("299 Custom Reason Here", [("Content-Type", "text/plain")])
    return [b"custom"]


def sleep(environ, start_response):
    ms = int(query(environ).get("ms", "100"))
    t0 = time.time()
    time.sleep(ms / 1000)
    return respond_json(start_response, {"pid": os.getpid(), "thread": threading.get_ident(),
                                         "start": t0, "end": time.time()})


def header_echo(environ, start_response):
    # Header names as the app writes them (mixed case); values with inner
    # spaces and tabs that are legal and must arrive unchanged.
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-MiXeD-CaSe", "Value  With  Spaces"),
                              ("X-Latin1", "caf\u00e9")])
    return [b"headers"]


def trickle(environ, start_response):
    # One chunk of `size` bytes, a pause, then another: the first must reach the client
    # during the pause (streaming, server-sent events), not when the next one is ready.
    q = query(environ)
    size, pause = int(q.get("size", "100")), float(q.get("pause", "1.5"))

    def body():
        yield b"a" * size
        time.sleep(pause)
        yield b"b" * size
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return body()


application = dispatch({
    "trickle": trickle,
    "generator": generator,
    "list": as_list,
    "write": write_then_iter,
    "write-only": write_only,
    "close": close_recorded,
    "endless": endless,
    "endless-write": endless_write,
    "closed": closed,
    "status": status,
    "head-body": head_body,
    "head-generator": head_generator,
    "cookies": cookies,
    "large-header": large_header,
    "many-headers": many_headers,
    "cl": content_length,
    "custom-reason": custom_reason,
    "sleep": sleep,
    "headers": header_echo,
})
