"""mod_wsgi's events (`mod_wsgi.subscribe_events`, `mod_wsgi.subscribe_shutdown`) as
mod_wsgi 4.9 publishes them, embedded and in a daemon process group, on Debian's mod_wsgi
(the reference) and on oxwsgi with the same configuration and the same expectations:

- per request, in order: request_started, response_started, request_finished, sharing one
  `request_data` dict (also `mod_wsgi.request_data()`), with the keys applications read;
- process_stopping, to both kinds of subscribers, when the process stops: `shutdown_reason`
  is "" when the server stops it, "inactivity_timeout" when a daemon process was idle.

The application appends every event it sees to a file per process in the stage's state
directory; the test reads them."""

import json
import time

import pytest
import requests

from harness.apache import ApacheServer

APP = """
import json, os, threading
import mod_wsgi

STATE = %r
_lock = threading.Lock()

def record(kind, name, event):
    line = {'kind': kind, 'name': name, 'keys': sorted(event), 'pid': os.getpid(),
            'group': mod_wsgi.process_group}
    if name == 'request_started':
        event['request_data']['marker'] = event['request_environ'].get('PATH_INFO')
    if 'request_data' in event:
        line['marker'] = event['request_data'].get('marker')
    if name == 'response_started':
        line['status'] = event['response_status']
    if name == 'process_stopping':
        line['reason'] = event['shutdown_reason']
    wrap = None
    if name == 'request_started':
        line['queued'] = event.get('queue_start', 0) > 0
        line['daemon_started'] = event.get('daemon_start', 0) > 0
        if event['request_environ'].get('PATH_INFO') == '/wrapped':
            inner = event['application_object']
            def wrapper(environ, start_response):
                return [b'wrapped:'] + list(inner(environ, start_response))
            # What a callback returns is merged into the event (its kwargs are a copy).
            wrap = {'application_object': wrapper}
    if name == 'request_finished':
        line['io'] = [event.get(k) for k in ('input_reads', 'input_length', 'output_length',
                                              'output_writes')]
    with _lock, open(os.path.join(STATE, 'events-%%d.jsonl' %% os.getpid()), 'a') as f:
        f.write(json.dumps(line) + '\\n')
    return wrap

mod_wsgi.subscribe_events(lambda name, **event: record('events', name, event))
mod_wsgi.subscribe_shutdown(lambda name, **event: record('shutdown', name, event))

def application(environ, start_response):
    data = mod_wsgi.request_data()
    start_response('201 Created', [('Content-Type', 'application/json')])
    return [json.dumps({'marker': data.get('marker'), 'pid': os.getpid()}).encode()]
"""


class EventsServer(ApacheServer):
    def __init__(self, wsgi):
        super().__init__(f"events-{wsgi}", wsgi=wsgi, mpm="event")

    def config_text(self):
        d = self.stage.root / "ev"
        d.mkdir(exist_ok=True)
        (d / "app.wsgi").write_text(APP % str(self.stage.state))
        return super().config_text() + f"""
WSGIDaemonProcess evd processes=1 threads=2
WSGIDaemonProcess idle processes=1 threads=1 inactivity-timeout=1
WSGIScriptAlias /embedded {d}/app.wsgi
WSGIScriptAlias /daemon {d}/app.wsgi process-group=evd
WSGIScriptAlias /idle {d}/app.wsgi process-group=idle
<Directory {d}>
    Require all granted
</Directory>
"""

    def events(self):
        out = []
        for f in sorted(self.stage.state.glob("events-*.jsonl")):
            out += [json.loads(line) for line in f.read_text().splitlines()]
        return out


@pytest.fixture(params=["modwsgi", "oxwsgi"])
def srv(request):
    s = EventsServer(request.param)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


REQUEST_STARTED = {"request_environ", "request_start", "application_start", "request_data", "request_id",
                   "thread_id", "daemon_connects", "daemon_restarts", "queue_start", "daemon_start",
                   "application_object"}
RESPONSE_STARTED = {"response_status", "response_headers", "exception_info", "request_data"}
# (mod_wsgi adds cpu_user_time/cpu_system_time only once the thread has used CPU time
# before the request; oxwsgi always does.)
REQUEST_FINISHED = {"application_finish", "application_time", "request_data", "input_reads", "input_length",
                    "input_time", "output_length", "output_writes", "output_time"}


@pytest.mark.parametrize("mount, group", [("/embedded", ""), ("/daemon", "evd")])
def test_request_events_in_order_with_shared_request_data(srv, mount, group):
    r = requests.get(srv.url(f"{mount}/first"), timeout=20)
    assert r.status_code == 201
    # request_started's callback stored a marker in request_data; the application reads it.
    assert r.json()["marker"] == "/first"
    pid = r.json()["pid"]
    deadline = time.monotonic() + 10
    while True:
        mine = [e for e in srv.events() if e["pid"] == pid and e.get("marker") == "/first"]
        if len(mine) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [e["name"] for e in mine] == ["request_started", "response_started", "request_finished"], mine
    assert all(e["kind"] == "events" and e["group"] == group for e in mine), mine
    started, response, finished = mine
    assert REQUEST_STARTED <= set(started["keys"]), started
    assert RESPONSE_STARTED <= set(response["keys"]), response
    assert response["status"] == "201 Created"
    assert REQUEST_FINISHED <= set(finished["keys"]), finished
    # In a daemon process the request was queued for it and taken by a daemon thread.
    assert (started["queued"], started["daemon_started"]) == (bool(group), bool(group)), started
    # No body read; one write of the JSON the application returned.
    assert finished["io"] == [0, 0, len(r.content), 1], finished


@pytest.mark.parametrize("mount", ["/embedded", "/daemon"])
def test_a_subscriber_may_wrap_the_application(srv, mount):
    r = requests.get(srv.url(f"{mount}/wrapped"), timeout=20)
    assert r.status_code == 201
    assert r.content.startswith(b"wrapped:{"), r.content[:100]


def test_process_stopping_when_the_server_stops(srv):
    for mount in ("/embedded", "/daemon"):
        assert requests.get(srv.url(f"{mount}/x"), timeout=20).status_code == 201
    srv.stop()
    stopping = [e for e in srv.events() if e["name"] == "process_stopping"]
    for group in ("", "evd"):
        seen = {(e["kind"], e["reason"]) for e in stopping if e["group"] == group}
        # Both subscriber lists, once each per process, with mod_wsgi's reason.
        assert seen == {("events", ""), ("shutdown", "")}, (group, stopping)
    for e in stopping:
        assert e["keys"] == ["shutdown_reason"]


def test_process_stopping_reason_inactivity_timeout(srv):
    assert requests.get(srv.url("/idle/x"), timeout=20).status_code == 201
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        idle = [e for e in srv.events() if e["name"] == "process_stopping" and e["group"] == "idle"]
        if len(idle) >= 2:
            break
        time.sleep(0.2)
    assert {(e["kind"], e["reason"]) for e in idle} == {("events", "inactivity_timeout"),
                                                         ("shutdown", "inactivity_timeout")}, idle
