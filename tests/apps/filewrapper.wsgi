# wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling").
# Mounted at /file. Serves <stage>/apps/data/sample.bin (made by the harness).
import io
import os
import sys

sys.dont_write_bytecode = True
from apputil import DATA_DIR, dispatch, query, read_state, respond_json, safe_token, write_state  # noqa: E402

SAMPLE = os.path.join(DATA_DIR, "sample.bin")


def record_close(token, kind):
    old = read_state(token) or {"closes": 0}
    write_state(token, {"closes": old["closes"] + 1, "kind": kind, "pid": os.getpid()})


class RecordingFile(io.FileIO):
    """A real file (has fileno(), so a server may sendfile it) whose close()
    is recorded: PEP 3333 says the wrapper's close() must close the file."""

    def __init__(self, path, token):
        super().__init__(path, "rb")
        self.token = safe_token(token)

    def close(self):
        if not self.closed:
            record_close(self.token, "file")
        super().close()


class RecordingBytesIO(io.BytesIO):
    def __init__(self, data, token):
        super().__init__(data)
        self.token = safe_token(token)

    def close(self):
        if not self.closed:
            record_close(self.token, "bytesio")
        super().close()


def headers(length=None):
    h = [("Content-Type", "application/octet-stream")]
    if length is not None:
        h.append(("Content-Length", str(length)))
    return h


def wrap(environ, f, q):
    block = int(q.get("block", "8192"))
    return environ["wsgi.file_wrapper"](f, block)


def real(environ, start_response):
    q = query(environ)
    start_response("200 OK", headers(q.get("length")))
    return wrap(environ, open(SAMPLE, "rb"), q)


def real_with_length(environ, start_response):
    # The file is longer than the declared Content-Length: only `length`
    # bytes may be sent ("never more bytes than declared").
    q = query(environ)
    start_response("200 OK", headers(int(q["length"])))
    return wrap(environ, open(SAMPLE, "rb"), q)


def bytesio(environ, start_response):
    # No fileno(): the server must fall back to iterating read(block).
    q = query(environ)
    with open(SAMPLE, "rb") as f:
        data = f.read()
    start_response("200 OK", headers(q.get("length")))
    return wrap(environ, io.BytesIO(data), q)


def offset(environ, start_response):
    # A file whose current position is not 0: transmission starts there.
    q = query(environ)
    f = open(SAMPLE, "rb")
    f.seek(int(q["offset"]))
    start_response("200 OK", headers(q.get("length")))
    return wrap(environ, f, q)


def close_real(environ, start_response):
    q = query(environ)
    start_response("200 OK", headers())
    return wrap(environ, RecordingFile(SAMPLE, q["token"]), q)


def close_bytesio(environ, start_response):
    q = query(environ)
    start_response("200 OK", headers())
    return wrap(environ, RecordingBytesIO(b"in-memory file content", q["token"]), q)


def closed(environ, start_response):
    return respond_json(start_response, {"state": read_state(query(environ)["token"])})


def has_wrapper(environ, start_response):
    fw = environ.get("wsgi.file_wrapper")
    return respond_json(start_response, {"present": fw is not None, "callable": callable(fw)})


application = dispatch({
    "real": real,
    "real-length": real_with_length,
    "bytesio": bytesio,
    "offset": offset,
    "close-real": close_real,
    "close-bytesio": close_bytesio,
    "closed": closed,
    "has-wrapper": has_wrapper,
})
