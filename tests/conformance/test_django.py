"""Django 4.2 mounted at /django: admin login through the real form with
CSRF, a form view, an upload, and URL reversing under SCRIPT_NAME."""

import hashlib
import os
import re

import requests

ADMIN_USER, ADMIN_PASSWORD = "admin", "oxwsgi-admin-pw"


def csrf_token(html):
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert m, f"no CSRF token in page:\n{html[:1500]}"
    return m.group(1)


def test_index(server):
    r = requests.get(server.url("/django/"), timeout=10)
    assert (r.status_code, r.text) == (200, "django index")


def test_admin_login_with_csrf(server):
    s = requests.Session()
    login = server.url("/django/admin/login/?next=/django/admin/")
    page = s.get(login, timeout=10)
    assert page.status_code == 200
    # The form posts back under the mount point: SCRIPT_NAME reached Django.
    assert 'action="/django/admin/login/?next=/django/admin/"' in page.text
    token = csrf_token(page.text)
    assert "csrftoken" in s.cookies

    r = s.post(login, data={"username": ADMIN_USER, "password": ADMIN_PASSWORD,
                            "csrfmiddlewaretoken": token, "next": "/django/admin/"},
               allow_redirects=False, timeout=10)
    assert r.status_code == 302, r.text[:1000]
    assert r.headers["Location"] == "/django/admin/"
    home = s.get(server.url("/django/admin/"), timeout=10)
    assert home.status_code == 200
    assert "Site administration" in home.text
    who = s.get(server.url("/django/whoami/"), timeout=10).json()
    assert who == {"authenticated": True, "username": "admin", "is_staff": True}


def test_admin_login_wrong_password(server):
    s = requests.Session()
    login = server.url("/django/admin/login/")
    token = csrf_token(s.get(login, timeout=10).text)
    r = s.post(login, data={"username": ADMIN_USER, "password": "wrong",
                            "csrfmiddlewaretoken": token}, allow_redirects=False, timeout=10)
    assert r.status_code == 200
    assert "Please enter the correct username and password" in r.text


def test_post_without_csrf_is_rejected(server):
    r = requests.post(server.url("/django/form/"), data={"name": "x", "age": "3"}, timeout=10)
    assert r.status_code == 403


def test_form_view(server):
    s = requests.Session()
    page = s.get(server.url("/django/form/"), timeout=10)
    assert 'action="/django/form/"' in page.text
    token = csrf_token(page.text)
    ok = s.post(server.url("/django/form/"), data={"name": "Ada", "age": "36",
                                                   "csrfmiddlewaretoken": token}, timeout=10)
    assert ok.status_code == 200
    assert ok.json() == {"valid": True, "data": {"name": "Ada", "age": 36}}
    bad = s.post(server.url("/django/form/"), data={"name": "Ada", "age": "old",
                                                    "csrfmiddlewaretoken": token}, timeout=10)
    assert bad.status_code == 400
    assert "age" in bad.json()["errors"]


def test_upload(server):
    data = os.urandom(3 * 1024 * 1024 + 5)  # beyond Django's in-memory limit: temp file path
    r = requests.post(server.url("/django/upload/"), files={"file": ("big.bin", data)},
                      data={"note": "hello"}, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert r.json() == {"name": "big.bin", "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(), "note": "hello"}


def test_reverse_and_absolute_uri_under_script_name(server):
    d = requests.get(server.url("/django/urls/?x=1"), timeout=10).json()
    base = f"http://127.0.0.1:{server.port}"
    assert d == {
        "reverse_form": "/django/form/",
        "absolute_form": f"{base}/django/form/",
        "absolute_here": f"{base}/django/urls/?x=1",
        "script_name": "/django",
        "path": "/django/urls/",
        "path_info": "/urls/",
    }


def test_404(server):
    assert requests.get(server.url("/django/nope/"), timeout=10).status_code == 404
