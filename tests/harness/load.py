"""Background load for restart/reload tests: a few threads GET one URL in a loop and
record every failure."""

import threading

import requests


class Load:
    """`check(response) -> bool` decides whether a response is good. Each request uses a
    fresh connection: when a server retires a worker it closes idle keep-alive connections,
    and a request sent on one at that instant is lost in transit (RFC 9112 §9.3.1: clients
    retry such idempotent requests); that race belongs to HTTP, not to the module."""

    def __init__(self, url, check, threads=4):
        self.url, self.check = url, check
        self.ok = 0
        self.failed = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self):
        while not self._stop.is_set():
            try:
                r = requests.get(self.url, timeout=30, headers={"Connection": "close"})
                good = self.check(r)
            except Exception as e:  # noqa: BLE001 - every failure is recorded
                good, r = False, e
            with self._lock:
                if good:
                    self.ok += 1
                else:
                    self.failed.append(repr(r)[:200])

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(60)
