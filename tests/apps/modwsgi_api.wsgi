# An application written against mod_wsgi's Python API (`import mod_wsgi`): the module
# attributes, event subscriptions and metrics functions code in the wild uses.
import json
import os
import threading

import mod_wsgi

_lock = threading.Lock()
_metrics_called = False
EVENTS = {"request_started": 0, "request_finished": 0}


def _on_event(name, **event):
    with _lock:
        if name in EVENTS:
            EVENTS[name] += 1
    if name == "request_started":
        # A dict returned by a callback is merged into the event (mod_wsgi's rule).
        return {"seen_by": "modwsgi_api"}


mod_wsgi.subscribe_events(_on_event)
mod_wsgi.subscribe_shutdown(lambda name, **event: None)


def application(environ, start_response):
    pm = mod_wsgi.process_metrics()
    sm = mod_wsgi.server_metrics()
    me = None
    if sm is not None:
        # This process's slot, and the worker slots' fields.
        mine = [p for p in sm["processes"] if p["pid"] == os.getpid()]
        me = {"found": len(mine) == 1, "process_keys": sorted(mine[0]) if mine else [],
              "worker_keys": sorted(mine[0]["workers"][0]) if mine else [],
              "busy_here": sum(w["status"] in "RWKLDCG" for w in mine[0]["workers"]) if mine else 0}
    # mod_wsgi's request_metrics(): the first call of a process opens the sample and returns
    # {}; the next one returns the period since. Only this application calls it.
    global _metrics_called
    with _lock:
        first_call, _metrics_called = not _metrics_called, True
        rm_first = mod_wsgi.request_metrics()
        rm = mod_wsgi.request_metrics()
    with _lock:
        events = dict(EVENTS)
    body = {
        "version": list(mod_wsgi.version),
        "process_group": mod_wsgi.process_group,
        "application_group": mod_wsgi.application_group,
        "maximum_processes": mod_wsgi.maximum_processes,
        "threads_per_process": mod_wsgi.threads_per_process,
        "server_metrics": None if sm is None else sorted(sm),
        "server_metrics_me": me,
        "process_metrics_keys": sorted(pm),
        "process_metrics_pid_ok": pm["pid"] == os.getpid(),
        "process_metrics_request_count": pm["request_count"],
        "request_metrics_first_call": first_call,
        "request_metrics_first_keys": sorted(rm_first),
        "request_metrics_keys": sorted(rm),
        "events": events,
        "environ_version": list(environ.get("mod_wsgi.version", ())),
        "total_requests_type": type(environ.get("mod_wsgi.total_requests")).__name__,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
