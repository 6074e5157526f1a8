"""Helpers shared by the test apps (imported through WSGIPythonPath /
wsgi_python_path, which points at this directory inside the stage).

Kept dependency-free and PEP 3333 plain: bytes bodies, native-str headers.
"""

import json
import os
from urllib.parse import parse_qs

# <stage>/state, world-writable: several worker processes serve the tests, so
# facts that a follow-up request must see (close() called, peak RSS) are
# written to files here rather than kept in module globals.
STATE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "state")
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def query(environ):
    """QUERY_STRING as a dict of first values."""
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def json_body(obj):
    return json.dumps(obj, sort_keys=True).encode("utf-8")


def respond_json(start_response, obj, status="200 OK", headers=()):
    body = json_body(obj)
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body))), *headers])
    return [body]


def not_found(environ, start_response):
    return respond_json(start_response, {"error": "no such endpoint",
                                         "PATH_INFO": environ.get("PATH_INFO")},
                        status="404 Not Found")


def safe_token(tok):
    """Tokens name files in STATE_DIR: keep them to hex/word characters."""
    if not tok or not all(c.isalnum() or c in "-_" for c in tok) or len(tok) > 64:
        raise ValueError(f"bad token {tok!r}")
    return tok


def write_state(name, obj):
    path = os.path.join(STATE_DIR, safe_token(name) + ".json")
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def read_state(name):
    try:
        with open(os.path.join(STATE_DIR, safe_token(name) + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def proc_status():
    """pid and memory figures (kB) of this very process."""
    out = {"pid": os.getpid()}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key + "_kb"] = int(rest.split()[0])
    return out


def dispatch(routes):
    """A WSGI app that picks a handler by the first PATH_INFO segment."""
    def application(environ, start_response):
        path = environ.get("PATH_INFO", "") or "/"
        name = path.lstrip("/").split("/", 1)[0]
        handler = routes.get(name)
        if handler is None:
            return not_found(environ, start_response)
        return handler(environ, start_response)
    return application
