"""PEP 3333 "Optional Platform-Specific File Handling" (wsgi.file_wrapper)."""

import time

import pytest
import requests

from harness.rawhttp import ProtocolError, build_request
from harness.stage import sample_bytes

SAMPLE = sample_bytes()


def get(server, target):
    r = server.raw_request("GET", target)
    assert r.status == 200, (r, r.body[:500])
    assert r.complete, r
    return r


def wait_state(server, token, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        st = requests.get(server.url(f"/file/closed?token={token}"), timeout=10).json()["state"]
        if st is not None or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


def test_file_wrapper_is_provided(server):
    assert requests.get(server.url("/file/has-wrapper"), timeout=10).json() == {
        "present": True, "callable": True}


@pytest.mark.parametrize("block", [8192, 1000, 1 << 20])
def test_real_file(server, block):
    assert get(server, f"/file/real?block={block}").body == SAMPLE


def test_real_file_with_its_content_length(server):
    r = get(server, f"/file/real?length={len(SAMPLE)}")
    assert r.framing == "length"
    assert r.body == SAMPLE


def test_real_file_truncated_to_content_length(server):
    # The file is longer than the declared length: only that much goes out,
    # and the connection stays in sync for the next request.
    with server.raw() as c:
        c.send(build_request("GET", "/file/real-length?length=5000"))
        r = c.read_response()
        assert r.body == SAMPLE[:5000]
        try:
            c.send(build_request("GET", "/file/has-wrapper", close=True))
            nxt = c.read_response()
        except (ProtocolError, ConnectionError):
            return
        assert nxt.status == 200 and nxt.body.startswith(b'{"callable"'), nxt


def test_bytesio_without_fileno(server):
    assert get(server, "/file/bytesio?block=4096").body == SAMPLE


def test_bytesio_with_content_length(server):
    r = get(server, f"/file/bytesio?length={len(SAMPLE)}")
    assert r.body == SAMPLE


def test_file_at_nonzero_offset(server):
    # Transmission starts at the file's current position, not at 0.
    assert get(server, "/file/offset?offset=1000").body == SAMPLE[1000:]


def test_file_at_offset_with_content_length(server):
    r = get(server, f"/file/offset?offset=12345&length={len(SAMPLE) - 12345}")
    assert r.body == SAMPLE[12345:]


def test_file_at_offset_limited_by_content_length(server):
    assert get(server, "/file/offset?offset=1000&length=3000").body == SAMPLE[1000:4000]


def test_head_on_file_wrapper(server):
    with server.raw() as c:
        c.send(build_request("HEAD", f"/file/real?length={len(SAMPLE)}", close=True))
        r = c.read_response("HEAD")
        assert r.status == 200
        assert c.read_until_close() == b""


@pytest.mark.parametrize("kind", ["real", "bytesio"])
def test_wrapper_close_closes_the_file(server, token, kind):
    r = get(server, f"/file/close-{kind}?token={token}")
    assert r.body == (SAMPLE if kind == "real" else b"in-memory file content")
    st = wait_state(server, token)
    assert st is not None, "the file object was never closed"
    assert st["closes"] == 1 and st["kind"] == ("file" if kind == "real" else "bytesio")
