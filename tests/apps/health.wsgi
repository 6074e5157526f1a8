# Health check used by the harness to decide a server is up, and by every
# test's teardown to prove the server still answers after an error path.
import os


def application(environ, start_response):
    body = b"ok pid=%d\n" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
