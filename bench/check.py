"""The correctness check every contender passes before it is measured."""

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from workloads import ENVIRON_HEADERS, MIXED_SLOW_PATH, POST_SIZE, WORKLOADS

sys.path.insert(0, str(Path(__file__).resolve().parent / "apps"))
import pagedata  # noqa: E402  (bench/apps/pagedata.py: the real apps' data)

HELLO = b"Hello world!\n"
BODY_64K = b"x" * 65536
BODY_STREAM = b"s" * (1 << 20)
PAGE = pagedata.expected_page()          # what the Flask and Django views must render


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


def _h2(tls_port, path):
    """(status, body, HTTP version) of one GET over TLS with HTTP/2 only (curl, ALPN)."""
    p = subprocess.run(["curl", "-sk", "--http2", "--max-time", "20", "-o", "-",
                        "-w", "\n%{http_code} %{http_version}",
                        f"https://127.0.0.1:{tls_port}{path}"], capture_output=True)
    body, _, tail = p.stdout.rpartition(b"\n")
    status, _, version = tail.decode(errors="replace").partition(" ")
    if p.returncode:
        raise OSError(f"curl exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}")
    return int(status or 0), body, version


def check(c, workload):
    """None if contender c serves workload correctly, else what is wrong.

    The ceilings serve static bytes: their POST and environ answers are the hello body."""
    port, ceiling = c.port, c.kind == "ceiling"
    try:
        if workload in ("flask", "django"):
            return _expect(f"GET {WORKLOADS[workload].path}",
                           *_request(port, "GET", WORKLOADS[workload].path), PAGE)
        if workload == "mixed":
            t0 = time.monotonic()
            err = _expect(f"GET {MIXED_SLOW_PATH}", *_request(port, "GET", MIXED_SLOW_PATH), HELLO)
            took = time.monotonic() - t0
            if not err and took < 0.1:
                err = f"GET {MIXED_SLOW_PATH}: answered in {took * 1000:.0f} ms, want >= 100"
            return err or _expect("GET /hello", *_request(port, "GET", "/hello"), HELLO)
        if workload == "h2":
            status, body, version = _h2(c.tls_port, WORKLOADS[workload].path)
            if version != "2":
                return f"GET https://...{WORKLOADS[workload].path}: HTTP version {version!r}, want 2"
            return _expect(f"GET https://...{WORKLOADS[workload].path} (h2)", status, body, HELLO)
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
