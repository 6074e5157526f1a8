"""Applications written against mod_wsgi's Python API (`import mod_wsgi`) run on every
server: the attributes, event subscriptions and metrics functions they use exist and
answer as under mod_wsgi 4.9 (embedded mode, and a daemon process group for the
`apache-daemon` flavour)."""

import os

import requests

PROCESS_METRICS = {"pid", "request_count", "request_busy_time", "memory_max_rss", "memory_rss",
                   "cpu_user_time", "cpu_system_time", "restart_time", "current_time",
                   "running_time", "request_threads", "active_requests", "threads"}
REQUEST_METRICS = {"start_time", "stop_time", "sample_period", "cpu_user_time", "cpu_system_time",
                   "memory_max_rss", "memory_rss", "request_threads_maximum",
                   "request_threads_started", "request_threads_active", "capacity_utilization",
                   "request_count", "request_throughput", "server_time", "application_time",
                   "queue_time", "daemon_time"}


def get(server):
    r = requests.get(server.url("/modwsgi-api/"), timeout=20)
    assert r.status_code == 200, r.text[:500]
    return r.json()


def test_module_attributes(server):
    j = get(server)
    assert j["version"][:2] == [4, 9]
    assert j["environ_version"] == j["version"]
    if server.kind == "apache" and server.name.endswith("daemon"):
        # A daemon process describes its own group (harness: processes=2 threads=15).
        assert (j["process_group"], j["maximum_processes"], j["threads_per_process"]) == ("conformance", 2, 15)
    else:
        assert j["process_group"] == ""
    # The interpreter's group: "" for %{GLOBAL} (the suite's setting, and nginx's only
    # interpreter); mod_wsgi's default names one per application (docs/interpreters.md).
    default_groups = server.kind == "apache" and os.environ.get("OXWSGI_APPLICATION_GROUP") == "default"
    assert j["application_group"] == (f"127.0.0.1:{server.port}|/modwsgi-api" if default_groups else "")
    assert isinstance(j["maximum_processes"], int) and j["maximum_processes"] >= 1
    assert isinstance(j["threads_per_process"], int) and j["threads_per_process"] >= 1
    assert j["total_requests_type"] == "int"


SERVER_METRICS = {"server_limit", "thread_limit", "running_generation", "restart_time", "current_time",
                  "running_time", "processes"}
WORKER_KEYS = {"thread_num", "generation", "status", "access_count", "bytes_served", "start_time",
               "stop_time", "last_used", "client", "request", "vhost"}


def test_server_metrics(server):
    j = get(server)
    if server.kind != "apache" or server.name.endswith("daemon"):
        # nginx has no scoreboard; in a daemon process mod_wsgi answers None unless the
        # group has server-metrics=On (an option oxwsgi refuses).
        assert j["server_metrics"] is None
        return
    # Apache: the scoreboard, as mod_wsgi gives it (WSGIServerMetrics defaults to on).
    assert SERVER_METRICS <= set(j["server_metrics"]), j["server_metrics"]
    me = j["server_metrics_me"]
    assert me["found"], me
    assert {"process_num", "pid", "generation", "quiescing", "workers"} <= set(me["process_keys"])
    assert WORKER_KEYS <= set(me["worker_keys"])
    assert me["busy_here"] >= 1  # this request's worker


def test_metrics_functions(server):
    j = get(server)
    assert j["process_metrics_pid_ok"]
    assert j["process_metrics_request_count"] >= 1
    assert PROCESS_METRICS <= set(j["process_metrics_keys"]), PROCESS_METRICS - set(j["process_metrics_keys"])
    # request_metrics(): a process's first call opens the sample and returns {} (mod_wsgi's
    # rule, which a reporter polling it relies on); every later call returns the period since.
    if j["request_metrics_first_call"]:
        assert j["request_metrics_first_keys"] == [], j["request_metrics_first_keys"]
    else:
        assert REQUEST_METRICS <= set(j["request_metrics_first_keys"]), j["request_metrics_first_keys"]
    assert REQUEST_METRICS <= set(j["request_metrics_keys"]), REQUEST_METRICS - set(j["request_metrics_keys"])


def test_event_subscribers_are_called(server):
    # Several requests: at least one process has seen a request start, and one that
    # started before the current one has finished.
    seen = [get(server)["events"] for _ in range(12)]
    assert max(e["request_started"] for e in seen) >= 2
    assert max(e["request_finished"] for e in seen) >= 1
