"""Stock mod_wsgi daemon-mode configurations, copied from the documentation with only the
paths filled in, run unchanged under mod_oxwsgi (and, as the reference, under Debian's
mod_wsgi): only the LoadModule line differs.

- mod_wsgi's QuickConfigurationGuide, "Delegation To Daemon Process" (a VirtualHost with
  WSGIDaemonProcess ... processes=2 threads=15 display-name=%{GROUP} and WSGIProcessGroup);
- Django's "How to use Django with Apache and mod_wsgi", "Using mod_wsgi daemon mode"
  (WSGIDaemonProcess example.com python-home=... python-path=..., WSGIProcessGroup).
"""

import pytest
import requests

from harness import paths
from harness.apache import ApacheServer

MODWSGI_GUIDE = """  # (mod_version, for IfVersion, is built into Debian's apache2)
<VirtualHost *:{port}>
    ServerName www.example.com
    ServerAlias example.com
    ServerAdmin webmaster@example.com

    DocumentRoot {stage}/documents

    <Directory {stage}/documents>
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
    </Directory>

    WSGIDaemonProcess example.com processes=2 threads=15 display-name=%{{GROUP}}
    WSGIProcessGroup example.com

    WSGIScriptAlias /myapp {stage}/wsgi-scripts/myapp.wsgi

    <Directory {stage}/wsgi-scripts>
    <IfVersion < 2.4>
        Order allow,deny
        Allow from all
    </IfVersion>
    <IfVersion >= 2.4>
        Require all granted
    </IfVersion>
    </Directory>
</VirtualHost>
"""

DJANGO_DOCS = """
WSGIDaemonProcess django.example.com python-home={venv} python-path={stage}/frameworks
WSGIProcessGroup django.example.com
WSGIScriptAlias /mysite {stage}/frameworks/django.wsgi process-group=django.example.com

<Directory {stage}/frameworks>
<Files django.wsgi>
Require all granted
</Files>
</Directory>
"""

MYAPP = """\
def application(environ, start_response):
    status = '200 OK'
    output = b'Hello World! ' + environ['mod_wsgi.process_group'].encode()

    response_headers = [('Content-type', 'text/plain'),
                        ('Content-Length', str(len(output)))]
    start_response(status, response_headers)

    return [output]
"""


class Stock(ApacheServer):
    def __init__(self, name, wsgi, stanza):
        super().__init__(name, wsgi=wsgi, mpm="event")
        self.stanza = stanza

    def write_config(self):
        (self.stage.root / "documents").mkdir(exist_ok=True)
        (self.stage.root / "wsgi-scripts").mkdir(exist_ok=True)
        (self.stage.root / "wsgi-scripts" / "myapp.wsgi").write_text(MYAPP)
        self.conf.write_text(self.config_text() + self.stanza.format(
            stage=self.stage.root, port=self.port, venv=paths.VENV, modules=paths.APACHE_MODULES))


@pytest.mark.parametrize("wsgi", ["oxwsgi", "modwsgi"])
def test_the_quick_configuration_guide_daemon_stanza_runs(wsgi):
    srv = Stock(f"stock-guide-{wsgi}", wsgi, MODWSGI_GUIDE)
    srv.start()
    try:
        r = requests.get(srv.url("/myapp"), headers={"Host": "example.com"}, timeout=30)
        assert r.status_code == 200, (r.status_code, srv.log_tail())
        assert r.text == "Hello World! example.com"
    finally:
        srv.stop()
        srv.cleanup()


@pytest.mark.parametrize("wsgi", ["oxwsgi", "modwsgi"])
def test_the_django_documentation_daemon_stanza_runs(wsgi):
    srv = Stock(f"stock-django-{wsgi}", wsgi, DJANGO_DOCS)
    srv.start()
    try:
        r = requests.get(srv.url("/mysite/whoami/"), timeout=30)
        assert r.status_code == 200, (r.status_code, r.text[:300], srv.log_tail())
        r = requests.get(srv.url("/mysite/admin/login/"), timeout=30)
        assert r.status_code == 200 and "Django" in r.text, (r.status_code, r.text[:300])
    finally:
        srv.stop()
        srv.cleanup()
