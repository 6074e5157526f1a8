"""The correctness check every contender passes before it is measured."""

import http.client
import os

from workloads import ENVIRON_HEADERS, POST_SIZE

HELLO = b"Hello world!\n"
BODY_64K = b"x" * 65536
BODY_STREAM = b"s" * (1 << 20)


def _request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def _expect(what, status, got, want):
    if status != 200:
        return f"{what}: status {status}"
    if got != want:
        return f"{what}: got {len(got)} bytes {got[:40]!r}..., want {len(want)} bytes {want[:40]!r}..."
    return None


def check(port, workload, ceiling):
    """None if the contender serves workload correctly, else what is wrong.

    The ceilings serve static bytes: their POST and environ answers are the hello body."""
    try:
        if workload in ("hello", "hello-c1"):
            return _expect("GET /hello", *_request(port, "GET", "/hello"), HELLO)
        if workload == "64k":
            return _expect("GET /64k", *_request(port, "GET", "/64k"), BODY_64K)
        if workload == "stream":
            return _expect("GET /stream", *_request(port, "GET", "/stream"), BODY_STREAM)
        if workload == "post":
            body = os.urandom(POST_SIZE)
            hdrs = {"Content-Type": "application/octet-stream"}
            if ceiling:
                return _expect("POST /post", *_request(port, "POST", "/post", body, hdrs), HELLO)
            err = _expect("POST /echo (1 MiB echoed back)",
                          *_request(port, "POST", "/echo", body, hdrs), body)
            return err or _expect("POST /post", *_request(port, "POST", "/post", body, hdrs),
                                  b"%d\n" % POST_SIZE)
        if workload == "environ":
            status, got = _request(port, "GET", "/environ", headers=ENVIRON_HEADERS)
            if ceiling:
                return _expect("GET /environ", status, got, HELLO)
            if status != 200:
                return f"GET /environ: status {status}"
            seen = int(got.split()[0]) if got[:1].isdigit() else -1
            if seen < 20:
                return f"GET /environ: the app saw {seen} HTTP_ headers, want >= 20 ({got[:60]!r})"
            return None
        return f"unknown workload {workload}"
    except (OSError, http.client.HTTPException) as e:
        return f"{workload}: {type(e).__name__}: {e}"
