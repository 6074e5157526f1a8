"""Bottle (/bottle), Falcon (/falcon) and plain Werkzeug (/werkzeug)."""

import hashlib
import os

import requests


# -- Bottle ------------------------------------------------------------------

def test_bottle_route_and_urls(server):
    d = requests.get(server.url("/bottle/hello/world"), timeout=10).json()
    assert d["hello"] == "world"
    assert d["script_name"] == "/bottle/"
    assert d["url"] == f"http://127.0.0.1:{server.port}/bottle/hello/world"
    assert d["route_url"] == "/bottle/hello/x"


def test_bottle_json_and_form(server):
    assert requests.post(server.url("/bottle/json"), json={"k": [1, "two"]},
                         timeout=10).json() == {"received": {"k": [1, "two"]}}
    assert requests.post(server.url("/bottle/form"), data={"a": "b", "c": "ü"},
                         timeout=10).json() == {"form": {"a": "b", "c": "ü"}}


def test_bottle_upload(server):
    data = os.urandom(200000)
    d = requests.post(server.url("/bottle/upload"), files={"file": ("f.bin", data)}, timeout=30).json()
    assert d == {"filename": "f.bin", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_bottle_query_decoding(server):
    d = requests.get(server.url("/bottle/query?name=caf%C3%A9&x=1+2"), timeout=10).json()
    assert d == {"query": {"name": "café", "x": "1 2"}, "raw": "name=caf%C3%A9&x=1+2"}


def test_bottle_redirect_keeps_prefix(server):
    r = requests.get(server.url("/bottle/redirect"), allow_redirects=False, timeout=10)
    assert r.status_code in (302, 303)
    assert r.headers["Location"] == f"http://127.0.0.1:{server.port}/bottle/hello/redirected"


# -- Falcon ------------------------------------------------------------------

def test_falcon_get(server):
    d = requests.get(server.url("/falcon/things/42?a=1"), timeout=10).json()
    assert d == {"id": "42", "relative_uri": "/falcon/things/42?a=1",
                 "url": f"http://127.0.0.1:{server.port}/falcon/things/42?a=1",
                 "root_path": "/falcon", "params": {"a": "1"}}


def test_falcon_put_json(server):
    r = requests.put(server.url("/falcon/things/7"), json={"v": True}, timeout=10)
    assert r.status_code == 201
    assert r.json() == {"id": "7", "body": {"v": True}}


def test_falcon_bounded_stream(server):
    data = os.urandom(123457)
    d = requests.post(server.url("/falcon/echo"), data=data, timeout=30).json()
    assert d == {"len": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                 "content_length": len(data)}


def test_falcon_stream_and_error(server):
    assert requests.get(server.url("/falcon/stream?n=4"), timeout=10).text == \
        "part 0\npart 1\npart 2\npart 3\n"
    r = requests.get(server.url("/falcon/missing"), timeout=10)
    assert r.status_code == 404
    assert r.json()["title"] == "nope"


# -- Werkzeug ----------------------------------------------------------------

def test_werkzeug_index_and_echo(server):
    assert requests.get(server.url("/werkzeug/"), timeout=10).text == "werkzeug index"
    d = requests.post(server.url("/werkzeug/echo?q=1"), data={"f": ["a", "b"]}, timeout=10).json()
    assert d == {"form": {"f": ["a", "b"]}, "args": {"q": ["1"]}, "data_len": 0}


def test_werkzeug_url_building(server):
    d = requests.get(server.url("/werkzeug/urls"), timeout=10).json()
    assert d == {"external": f"http://127.0.0.1:{server.port}/werkzeug/",
                 "relative": "/werkzeug/echo", "script_root": "/werkzeug",
                 "base_url": f"http://127.0.0.1:{server.port}/werkzeug/urls"}


def test_werkzeug_redirect(server):
    r = requests.get(server.url("/werkzeug/go"), allow_redirects=False, timeout=10)
    assert r.status_code == 302
    assert r.headers["Location"] in ("/werkzeug/", f"http://127.0.0.1:{server.port}/werkzeug/")
