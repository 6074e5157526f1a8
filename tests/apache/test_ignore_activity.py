"""`WSGIIgnoreActivity On` in daemon mode, on Debian's mod_wsgi (the reference) and on oxwsgi
with the same configuration: requests where it applies do not count as activity for the
group's `inactivity-timeout` (a load balancer's health probe must not keep an otherwise idle
process alive), while requests elsewhere do. As in mod_wsgi 4.9, the countdown starts with
the first request that counts: a process that only ever got probes is left alone."""

import time

import pytest
import requests

from harness.apache import ApacheServer

APP = """
import os

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [str(os.getpid()).encode()]
"""


class IdleServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"ignore-activity-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        d = self.stage.root / "ia"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(APP)
        return super().config_text() + f"""
WSGIDaemonProcess idle processes=1 threads=2 inactivity-timeout=2
WSGIScriptAlias /probe {d}/app.wsgi process-group=idle application-group=%{{GLOBAL}}
WSGIScriptAlias /work {d}/app.wsgi process-group=idle application-group=%{{GLOBAL}}
<Location /probe>
    WSGIIgnoreActivity On
</Location>
<Directory {d}>
    Require all granted
</Directory>
"""


@pytest.fixture(params=["modwsgi", "oxwsgi"])
def srv(request):
    s = IdleServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def pids_while_polling(srv, path, seconds):
    """The daemon pids that answered `path`, polled every 0.3 s for `seconds`."""
    pids = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r = requests.get(srv.url(path), timeout=20)
        if r.status_code == 200:
            pids.append(r.text)
        time.sleep(0.3)
    return pids


def test_ignored_requests_do_not_keep_an_idle_process(srv):
    # One request that counts starts the 2 s countdown; probes every 0.3 s for 6 s do not
    # reset it, so the process is recycled (a new pid answers), and the new process, which
    # has had only probes, is not.
    first = requests.get(srv.url("/work/"), timeout=20)
    assert first.status_code == 200
    pids = pids_while_polling(srv, "/probe/", 6)
    assert len(pids) >= 10, pids
    assert pids[0] == first.text, pids
    changes = sum(1 for a, b in zip(pids, pids[1:]) if a != b)
    assert changes == 1, f"expected one recycling, saw pids {pids}"


def test_only_probes_never_start_the_countdown(srv):
    pids = pids_while_polling(srv, "/probe/", 4)
    assert len(pids) >= 8, pids
    assert len(set(pids)) == 1, pids


def test_other_requests_keep_the_process(srv):
    pids = pids_while_polling(srv, "/work/", 6)
    assert len(pids) >= 10, pids
    assert len(set(pids)) == 1, f"recycled while requests came every 0.3 s: {pids}"
