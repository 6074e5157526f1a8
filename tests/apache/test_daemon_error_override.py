"""WSGIErrorOverride in daemon mode, on Debian's mod_wsgi 4.9.4 (the reference) and on
oxwsgi with the same configuration and expectations: with On, an error status (4xx/5xx)
from an application in a daemon process group is answered with httpd's own error page
(`ErrorDocument`), the application's body discarded; other statuses, and every response
where it is Off, pass through. (Embedded responses are never overridden, as in mod_wsgi:
tests/apache/test_compat_directives.py.)

The same server sets WSGIAcceptMutex flock and WSGISocketRotation Off, which oxwsgi
accepts with a notice (they change nothing a request gets, docs/mod_wsgi-migration.md):
the two processes of the group serve as under mod_wsgi."""

import pytest
import requests

from harness.apache import ApacheServer

APP = """
def application(environ, start_response):
    status = environ['PATH_INFO'].strip('/') or '200'
    headers = [('Content-Type', 'text/plain'), ('X-App', 'yes')]
    if status == '302':
        headers.append(('Location', 'http://example.com/elsewhere'))
    start_response({'200': '200 OK', '404': '404 Not Found', '403': '403 Forbidden',
                    '500': '500 Internal Server Error', '302': '302 Found'}[status], headers)
    return [b'the application says ' + status.encode()]
"""


class OverrideServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"override-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        d = self.stage.root / "eo"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(APP)
        return super().config_text() + f"""
WSGIAcceptMutex flock
WSGISocketRotation Off
WSGIDaemonProcess eo processes=2 threads=4
WSGIScriptAlias /on {d}/app.wsgi process-group=eo
WSGIScriptAlias /off {d}/app.wsgi process-group=eo
WSGIScriptAlias /embedded {d}/app.wsgi
<Location /on>
    WSGIErrorOverride On
    ErrorDocument 404 "httpd's own 404 page"
</Location>
<Location /embedded>
    WSGIErrorOverride On
    ErrorDocument 404 "httpd's own 404 page"
</Location>
<Directory {d}>
    Require all granted
</Directory>
"""


@pytest.fixture(scope="module", params=["modwsgi", "oxwsgi"])
def srv(request):
    s = OverrideServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def get(srv, path):
    return requests.get(srv.url(path), timeout=20, allow_redirects=False)


def test_error_status_gets_httpds_error_document(srv):
    r = get(srv, "/on/404")
    assert r.status_code == 404
    assert r.text == "httpd's own 404 page"


@pytest.mark.parametrize("status", ["403", "500"])
def test_other_errors_get_httpds_default_page(srv, status):
    r = get(srv, f"/on/{status}")
    assert r.status_code == int(status)
    assert "the application says" not in r.text
    assert "<title>" in r.text  # httpd's generated error page


@pytest.mark.parametrize("status", ["200", "302"])
def test_other_statuses_pass_through(srv, status):
    r = get(srv, f"/on/{status}")
    assert r.status_code == int(status)
    assert r.text == f"the application says {status}"
    assert r.headers["X-App"] == "yes"


@pytest.mark.parametrize("mount", ["/off", "/embedded"])
def test_off_and_embedded_keep_the_applications_page(srv, mount):
    r = get(srv, f"{mount}/404")
    assert r.status_code == 404
    assert r.text == "the application says 404"
