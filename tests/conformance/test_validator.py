"""The apps again behind wsgiref.validate.validator, which asserts PEP 3333
from the app's side: environ types, wsgi.input/wsgi.errors APIs, and that the
server calls close() on the iterable (a missing close is reported from
__del__ into the error log)."""

import hashlib
import time

import pytest
import requests

from harness.stage import sample_bytes

VALIDATOR_COMPLAINTS = ("AssertionError", "WSGIWarning", "garbage collected without being closed")


def check_log_clean(server):
    # A missing close() is reported from __del__, which may run a moment after the response
    # went out: give it that moment.
    time.sleep(0.1)
    log = server.test_log()
    found = [c for c in VALIDATOR_COMPLAINTS if c in log]
    assert not found, f"wsgiref.validate complained: {found}\n{log[-3000:]}"


@pytest.mark.parametrize("path", ["/valid/env/dump", "/valid/env/dump/x%20y?q=1"])
def test_validated_environ(server, path):
    r = requests.get(server.url(path), timeout=10)
    assert r.status_code == 200, r.text[:2000]
    env = r.json()["environ"]
    assert env["SCRIPT_NAME"]["value"] == "/valid/env"
    check_log_clean(server)


@pytest.mark.parametrize("endpoint,body,expect", [
    ("read-n?n=5", b"validated body", {"body": "validated body"}),
    ("readline", b"a\nb\nc", {"lines": ["a\n", "b\n", "c"]}),
    ("readlines", b"a\nb\n", {"lines": ["a\n", "b\n"], "rest": ""}),
    ("iter", b"x\ny", {"lines": ["x\n", "y"]}),
])
def test_validated_input(server, endpoint, body, expect):
    r = requests.post(server.url(f"/valid/env/{endpoint}"), data=body, timeout=10)
    assert r.status_code == 200, r.text[:2000]
    got = r.json()
    assert {k: got[k] for k in expect} == expect
    check_log_clean(server)


@pytest.mark.parametrize("endpoint,expect", [
    ("generator", b"alpha-beta-gamma"),
    ("list", b"one,two,three"),
    ("write", b"w1-w2-iter1-iter2"),
    ("cookies", b"cookies"),
])
def test_validated_responses(server, endpoint, expect):
    r = requests.get(server.url(f"/valid/resp/{endpoint}"), timeout=10)
    assert r.status_code == 200, r.text[:2000]
    assert r.content == expect
    check_log_clean(server)


def test_validated_204(server):
    r = requests.get(server.url("/valid/resp/status?code=204"), timeout=10)
    assert r.status_code == 204
    check_log_clean(server)


def test_validated_head(server):
    r = requests.head(server.url("/valid/resp/head-body"), timeout=10)
    assert r.status_code == 200 and r.content == b""
    check_log_clean(server)


@pytest.mark.parametrize("endpoint", ["real", "bytesio"])
def test_validated_file_wrapper(server, endpoint):
    r = requests.get(server.url(f"/valid/file/{endpoint}"), timeout=10)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(sample_bytes()).digest()
    check_log_clean(server)
