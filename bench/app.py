"""The one WSGI app every contender serves (bench/README.md lists the workloads).

Dispatches on PATH_INFO. Every response sets Content-Length. Standard library only, but
for the real-app workloads: /flask/... and /django/... go to the Flask and Django apps of
bench/apps/ (staged as apps/ beside this file), imported on their first request in each
process, from the bench venv's site-packages (bench_site.py, written at stage time), so
that every contender mounts them the same way and the other workloads do not carry them.
"""

import os
import sys
import threading
import time

HELLO = b"Hello world!\n"                 # 13 bytes
BODY_64K = b"x" * 65536
PIECE = b"s" * 16384                      # /stream: 64 x 16 KiB = 1 MiB
STREAM_PIECES = 64
READ_SIZE = 65536
SLEEP_S = 0.1                             # /sleep100, the slow requests of the mixed workload

_HERE = os.path.dirname(os.path.abspath(__file__))
_real_apps = {}
_real_apps_lock = threading.Lock()


def _real_app(name):
    """The WSGI callable of bench/apps/<name>app.py, imported once per process."""
    app = _real_apps.get(name)
    if app is None:
        with _real_apps_lock:
            app = _real_apps.get(name)
            if app is None:
                import importlib
                # Not every server puts the script's directory on sys.path (Apache does not).
                if _HERE not in sys.path:
                    sys.path.insert(0, _HERE)
                from bench_site import SITE
                for d in (SITE, os.path.join(_HERE, "apps")):
                    if d not in sys.path:
                        sys.path.insert(0, d)
                app = _real_apps[name] = importlib.import_module(name + "app").application
    return app


def _stream():
    for _ in range(STREAM_PIECES):
        yield PIECE


def _read(environ, keep):
    """Read wsgi.input to the end in 64 KiB reads; returns the chunks if keep, else the byte count."""
    inp = environ["wsgi.input"]
    left = int(environ.get("CONTENT_LENGTH") or 0)
    chunks = []
    n = 0
    while left > 0:
        data = inp.read(min(READ_SIZE, left))
        if not data:
            break
        n += len(data)
        left -= len(data)
        if keep:
            chunks.append(data)
    return chunks if keep else n


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/flask/"):
        return _real_app("flask")(environ, start_response)
    if path.startswith("/django/"):
        return _real_app("django")(environ, start_response)
    if path == "/hello":
        body = [HELLO]
        length = len(HELLO)
    elif path == "/sleep100":
        time.sleep(SLEEP_S)
        body = [HELLO]
        length = len(HELLO)
    elif path == "/64k":
        body = [BODY_64K]
        length = len(BODY_64K)
    elif path == "/stream":
        body = _stream()
        length = len(PIECE) * STREAM_PIECES
    elif path == "/post":
        body = [b"%d\n" % _read(environ, keep=False)]
        length = len(body[0])
    elif path == "/echo":                 # the correctness check only
        body = _read(environ, keep=True)
        length = sum(len(c) for c in body)
    elif path == "/environ":
        # Touch every key and value, as an app that logs or copies its environ would.
        total = 0
        http = 0
        for key, value in environ.items():
            total += len(key)
            if isinstance(value, str):
                total += len(value)
            if key.startswith("HTTP_"):
                http += 1
        body = [b"%d HTTP_ headers\n" % http]
        length = len(body[0])
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(length))])
    return body
