"""The one WSGI app every contender serves (bench/README.md lists the workloads).

Dispatches on PATH_INFO. Every response sets Content-Length. Standard library only.
"""

HELLO = b"Hello world!\n"                 # 13 bytes
BODY_64K = b"x" * 65536
PIECE = b"s" * 16384                      # /stream: 64 x 16 KiB = 1 MiB
STREAM_PIECES = 64
READ_SIZE = 65536


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
    if path == "/hello":
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
