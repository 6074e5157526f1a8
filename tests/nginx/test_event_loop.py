"""Python never runs on nginx's event loop: while slow applications block thread-pool
threads, a fast WSGI request and a static file on the same workers still answer at once.
Also the per-worker in-flight cap (503 + Retry-After, never an unbounded queue)."""

import concurrent.futures
import time

import pytest
import requests

from custom import CustomNginx

LOCATIONS = """
        location /slow {{ wsgi_app {d}/slow.wsgi; }}
"""


@pytest.fixture(scope="module")
def srv():
    # 8 slow requests over 2 workers must leave threads free for the fast request in either
    # worker: 16 threads per worker (the 8 could all land on one worker).
    s = CustomNginx("nginx-loop", locations=LOCATIONS, threads=16)
    s.start()
    yield s
    s.stop()
    s.check_log()
    s.cleanup()


def timed_get(url):
    t0 = time.monotonic()
    r = requests.get(url, timeout=30)
    return r, time.monotonic() - t0


def fast_while_busy(srv, busy_path, n_busy, fast_paths):
    """Start `n_busy` requests of `busy_path` (each takes about 1 s), then time 5 rounds of
    `fast_paths` while they run; every answer must be right. Returns the slowest fast one."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=n_busy) as pool:
        busy = [pool.submit(timed_get, srv.url(busy_path)) for _ in range(n_busy)]
        time.sleep(0.3)  # the busy ones are running now
        fast = [timed_get(srv.url(p)) for _ in range(5) for p in fast_paths]
        results = [f.result() for f in busy]
    # /slow/sleep?1.0 answers "/sleep pid=...": the app's PATH_INFO.
    expected = "/" + busy_path.split("/")[2].split("?")[0]
    for r, took in results:
        assert r.status_code == 200 and r.text.startswith(expected), r.text
        assert took >= 0.9
    for (r, _), path in zip(fast, fast_paths * 5):
        assert r.status_code == 200, (path, r.status_code)
        if path.startswith("/slow/"):
            assert r.text.startswith("/fast"), r.text
    return max(took for _, took in fast)


def test_fast_requests_are_not_blocked_by_slow_apps(srv):
    worst = fast_while_busy(srv, "/slow/sleep?1.0", 8, ["/slow/fast", "/static.txt"])
    print(f"slowest fast/static request under 8 sleeping apps: {worst * 1000:.1f} ms")
    assert worst < 0.1, f"a fast request took {worst * 1000:.0f} ms while slow apps ran"


def test_fast_requests_are_not_held_back_by_cpu_bound_apps(srv):
    # A runner waiting for the GIL counts as fresh, and one finishing a job steps aside for
    # it (dispatch.rs): fast requests still get the GIL within Python's switch interval
    # while requests compute, not after them.
    worst = fast_while_busy(srv, "/slow/spin?1.0", 4, ["/slow/fast"])
    print(f"slowest fast request under 4 computing apps: {worst * 1000:.1f} ms")
    assert worst < 0.25, f"a fast request took {worst * 1000:.0f} ms while apps computed"


def test_in_flight_cap_answers_503():
    s = CustomNginx("nginx-cap", locations=LOCATIONS, http_extra="    wsgi_max_in_flight 2;", threads=8)
    s.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            # 3 s: every request arrives while the first ones still run, even on a slow machine.
            futs = [pool.submit(requests.get, s.url("/slow/sleep?3.0"), timeout=30) for _ in range(12)]
            rs = [f.result() for f in futs]
        codes = sorted(r.status_code for r in rs)
        # 2 workers x 2 in flight: at most 4 run, the rest are refused at once.
        assert codes.count(200) <= 4 and codes.count(200) >= 2, codes
        assert set(codes) <= {200, 503}, codes
        refused = [r for r in rs if r.status_code == 503]
        assert refused and all(r.headers.get("Retry-After") for r in refused)
        assert requests.get(s.url("/slow/after"), timeout=10).status_code == 200
    finally:
        s.stop()
        s.check_log()
        s.cleanup()


class OneWorker(CustomNginx):
    def config_text(self):
        return super().config_text().replace("worker_processes 2;", "worker_processes 1;")


def test_in_flight_cap_per_location():
    # wsgi_max_in_flight in server and location blocks, one count per location: /one runs
    # 1 at a time, /three 3, and /inherit takes the server's 2; all at once.
    locations = """
        wsgi_max_in_flight 2;
        location /one {{ wsgi_app {d}/slow.wsgi; wsgi_max_in_flight 1; }}
        location /three {{ wsgi_app {d}/slow.wsgi; wsgi_max_in_flight 3; }}
        location /inherit {{ wsgi_app {d}/slow.wsgi; }}
"""
    s = OneWorker("nginx-cap-loc", locations=locations, threads=16)
    s.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=18) as pool:
            futs = {p: [pool.submit(requests.get, s.url(f"{p}/sleep?3.0"), timeout=30) for _ in range(6)]
                    for p in ("/one", "/three", "/inherit")}
            codes = {p: sorted(f.result().status_code for f in fs) for p, fs in futs.items()}
        assert codes["/one"] == [200] + [503] * 5, codes
        assert codes["/three"] == [200] * 3 + [503] * 3, codes
        assert codes["/inherit"] == [200] * 2 + [503] * 4, codes
        # The counts go back down: each location serves again.
        for p in ("/one", "/three", "/inherit"):
            assert requests.get(s.url(f"{p}/after"), timeout=10).status_code == 200
    finally:
        s.stop()
        s.check_log()
        s.cleanup()
