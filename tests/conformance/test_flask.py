"""Flask mounted at /flask."""

import hashlib
import os

import requests


def test_index(server):
    r = requests.get(server.url("/flask/"), timeout=10)
    assert (r.status_code, r.text) == (200, "flask index")


def test_form_post(server):
    r = requests.post(server.url("/flask/form"), data={"name": "Zoë", "colour": ["red", "blue"]},
                      timeout=10)
    assert r.status_code == 200
    assert r.json() == {"form": {"name": ["Zoë"], "colour": ["red", "blue"]}, "method": "POST"}


def test_json_roundtrip(server):
    payload = {"a": [1, 2, 3], "b": {"nested": "ünïcode"}, "c": None}
    r = requests.post(server.url("/flask/json"), json=payload, timeout=10)
    assert r.json() == {"received": payload, "content_type": "application/json"}


def test_session_survives_requests(server):
    # Several worker processes share the signed cookie session.
    s = requests.Session()
    assert s.get(server.url("/flask/session/set?v=remember-me"), timeout=10).status_code == 200
    cookie = s.cookies.get("session")
    assert cookie
    for _ in range(6):
        assert s.get(server.url("/flask/session/get"), timeout=10).json()["value"] == "remember-me"
    # Without the cookie there is no value.
    assert requests.get(server.url("/flask/session/get"), timeout=10).json()["value"] is None


def test_multipart_upload(server):
    data = os.urandom(1024 * 1024 + 3)
    r = requests.post(server.url("/flask/upload"), files={"file": ("blob.bin", data)},
                      data={"field": "extra"}, timeout=30)
    assert r.status_code == 200
    assert r.json() == {"filename": "blob.bin", "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "field": "extra"}


def test_streaming_response(server):
    r = server.raw_request("GET", "/flask/stream?n=50")
    assert r.status == 200 and r.complete
    assert r.framing == "chunked"
    assert r.body.decode() == "".join(f"line {i}\n" for i in range(50))


def test_url_for_external_under_script_name(server):
    d = requests.get(server.url("/flask/urls"), timeout=10).json()
    assert d["external"] == f"http://127.0.0.1:{server.port}/flask/upload"
    assert d["relative"] == "/flask/stream?n=3"
    assert d["script_root"] == "/flask"
    assert d["path"] == "/urls"
    assert d["url"] == f"http://127.0.0.1:{server.port}/flask/urls"


def test_unhandled_exception_logged(server, token):
    r = requests.get(server.url(f"/flask/boom?token={token}"), timeout=10)
    assert r.status_code == 500
    server.wait_for_test_log(f"oxwsgi-test flask boom {token}")


def test_404(server):
    assert requests.get(server.url("/flask/no-such-page"), timeout=10).status_code == 404
