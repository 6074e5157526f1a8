# The request side of PEP 3333: the environ dictionary and wsgi.input.
# Mounted at /env and /deep/mount. Every endpoint answers JSON.
import hashlib
import sys

sys.dont_write_bytecode = True
from apputil import dispatch, query, respond_json  # noqa: E402


def describe(value):
    """JSON-able description of one environ value: its Python type name, and
    the value itself where it is a plain type."""
    d = {"type": type(value).__name__}
    if isinstance(value, (str, bool, int)) or value is None:
        d["value"] = value
    elif isinstance(value, tuple):
        d["value"] = [describe(v)["value"] if isinstance(v, (str, int, bool)) else repr(v) for v in value]
    return d


def dump(environ, start_response):
    inp, err = environ["wsgi.input"], environ["wsgi.errors"]
    return respond_json(start_response, {
        "environ": {k: describe(v) for k, v in environ.items()},
        "key_types": sorted({type(k).__name__ for k in environ}),
        "input_methods": [m for m in ("read", "readline", "readlines", "__iter__") if hasattr(inp, m)],
        "errors_methods": [m for m in ("write", "writelines", "flush") if hasattr(err, m)],
    })


def summary(body, environ, **extra):
    return {"len": len(body), "body": body.decode("latin-1"),
            "sha256": hashlib.sha256(body).hexdigest(),
            "CONTENT_LENGTH": environ.get("CONTENT_LENGTH"),
            "input_terminated": environ.get("wsgi.input_terminated"), **extra}


def read_all(environ, start_response):
    body = environ["wsgi.input"].read()
    return respond_json(start_response, summary(body, environ, type=type(body).__name__))


def read_n(environ, start_response):
    n = int(query(environ).get("n", "7"))
    chunks = []
    while True:
        c = environ["wsgi.input"].read(n)
        if not c:
            break
        chunks.append(c)
    body = b"".join(chunks)
    return respond_json(start_response, summary(body, environ, sizes=[len(c) for c in chunks]))


def readline(environ, start_response):
    q = query(environ)
    n = int(q["n"]) if "n" in q else None
    lines = []
    while True:
        line = environ["wsgi.input"].readline() if n is None else environ["wsgi.input"].readline(n)
        if not line:
            break
        lines.append(line.decode("latin-1"))
    return respond_json(start_response, {"lines": lines})


def readlines(environ, start_response):
    q = query(environ)
    inp = environ["wsgi.input"]
    lines = inp.readlines(int(q["hint"])) if "hint" in q else inp.readlines()
    # read(n), not read(): wsgiref.validate (WSGI 1.0 rules) insists on a size.
    rest = b"".join(iter(lambda: inp.read(65536), b""))
    return respond_json(start_response, {"lines": [x.decode("latin-1") for x in lines],
                                         "rest": rest.decode("latin-1")})


def iterate(environ, start_response):
    lines = [x.decode("latin-1") for x in environ["wsgi.input"]]
    return respond_json(start_response, {"lines": lines})


def past_eof(environ, start_response):
    inp = environ["wsgi.input"]
    first = inp.read()
    # PEP 3333: "A server should return empty bytestrings from any attempt to
    # read from an empty or exhausted input stream."
    after = [inp.read(), inp.read(10), inp.readline(), inp.read(1)]
    lines_after = inp.readlines()
    return respond_json(start_response, {"len": len(first),
                                         "after": [x.decode("latin-1") for x in after],
                                         "after_types": [type(x).__name__ for x in after],
                                         "readlines_after": len(lines_after)})


def mixed(environ, start_response):
    # readline, read(n), read(0), read() interleaved must see one consistent stream.
    inp = environ["wsgi.input"]
    parts = [inp.readline(), inp.read(5), inp.read(0), inp.readline(), inp.read()]
    return respond_json(start_response, {"parts": [p.decode("latin-1") for p in parts]})


def read_nothing(environ, start_response):
    # Never touches wsgi.input: the server must still keep the connection usable.
    return respond_json(start_response, {"CONTENT_LENGTH": environ.get("CONTENT_LENGTH")})


application = dispatch({
    "dump": dump,
    "read": read_all,
    "read-n": read_n,
    "readline": readline,
    "readlines": readlines,
    "iter": iterate,
    "past-eof": past_eof,
    "mixed": mixed,
    "ignore-body": read_nothing,
})
