"""Test app for the nginx smoke script (tests/nginx/smoke.sh)."""
import json, os, time

STATE = os.environ.get("OXWSGI_STATE", "/tmp")


class Stream:
    def __init__(self, total, chunk, state):
        self.total, self.chunk, self.state = total, chunk, state
        self.sent = 0

    def __iter__(self):
        block = b"x" * self.chunk
        while self.sent < self.total:
            self.sent += self.chunk
            yield block

    def close(self):
        with open(self.state, "w") as f:
            f.write("closed after %d\n" % self.sent)


def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return line.split()[1]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env":
        keys = {k: v for k, v in environ.items() if isinstance(v, str)}
        body = json.dumps(keys, sort_keys=True).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        n = 0
        h = __import__("hashlib").sha256()
        while True:
            d = environ["wsgi.input"].read(65536)
            if not d:
                break
            n += len(d)
            h.update(d)
        body = ("%d %s %s rss=%s\n" % (n, h.hexdigest(), environ.get("CONTENT_LENGTH"), rss())).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if path == "/stream":
        mb = int(environ.get("QUERY_STRING") or "100")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Stream(mb << 20, 65536, "/tmp/oxngx/state/stream-close")
    if path == "/sleep":
        time.sleep(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept\n"]
    if path == "/error":
        raise RuntimeError("boom")
    if path == "/write":
        w = start_response("200 OK", [("Content-Type", "text/plain")])
        for i in range(int(environ.get("QUERY_STRING") or "10")):
            w(b"%d:" % i + b"w" * 65536 + b"\n")
        return []
    if path == "/file":
        f = open(__file__, "rb")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](f)
    if path == "/tick":
        def gen():
            for i in range(3):
                yield b"tick %d\n" % i
                time.sleep(0.5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/abort":
        def gen():
            yield b"partial"
            raise ValueError("mid-stream failure")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return gen()
    if path == "/rss":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%d %s\n" % (os.getpid(), rss())).encode()]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello from nginx\n"]
