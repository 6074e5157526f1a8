"""An nginx server from the harness with extra configuration and scripts."""

from harness.nginx import NginxServer

SLOW_APP = """
import os, time
def application(environ, start_response):
    path = environ['PATH_INFO']
    if path.startswith('/sleep'):
        time.sleep(float(environ.get('QUERY_STRING') or '1'))
    if path.startswith('/spin'):
        # CPU-bound: pure Python holding the GIL (but for Python's switch interval).
        end = time.monotonic() + float(environ.get('QUERY_STRING') or '1')
        while time.monotonic() < end:
            sum(range(1000))
    body = ('%s pid=%d' % (path, os.getpid())).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
"""

PARAMS_APP = """
import json
def application(environ, start_response):
    keys = ('OXWSGI_PARAM', 'OXWSGI_VAR', 'SCRIPT_NAME', 'PATH_INFO', 'HTTP_AUTHORIZATION')
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body]
"""


class CustomNginx(NginxServer):
    """`http_extra` goes into the http block, `locations` into the server block;
    `{d}` in them is the directory holding the extra scripts."""

    def __init__(self, name, locations="", http_extra="", threads=8):
        super().__init__(name)
        self.extra_locations = locations
        self.http_extra = http_extra
        self.threads = threads

    def config_text(self):
        d = self.stage.root / "extra"
        d.mkdir(exist_ok=True)
        (d / "slow.wsgi").write_text(SLOW_APP)
        (d / "params.wsgi").write_text(PARAMS_APP)
        self.extra = d
        text = super().config_text()
        text = text.replace("    server {\n", self.http_extra.format(d=d) + "\n    server {\n", 1)
        marker = "        server_name 127.0.0.1;\n"
        return text.replace(marker, marker + self.extra_locations.format(d=d) + "\n", 1)
