# The request and response apps again, wrapped in wsgiref.validate.validator,
# which asserts PEP 3333 rules on both sides: the types of the environ the
# server built, the wsgi.input / wsgi.errors APIs, and that the server calls
# close() on the iterable and never iterates after it. A violation by the
# server raises AssertionError inside the app (500 + traceback in the log),
# or, for a missing close(), an AssertionError in __del__ (in the log).
# Mounted at /valid; PATH_INFO picks the wrapped app: /valid/env/... or
# /valid/resp/... or /valid/file/...
import os
import sys
from wsgiref.validate import validator

sys.dont_write_bytecode = True
from apputil import not_found  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def load(script):
    # The other test scripts are plain files, not modules: execute them.
    ns = {"__file__": os.path.join(HERE, script), "__name__": "validated_" + script.split(".")[0]}
    with open(ns["__file__"]) as f:
        exec(compile(f.read(), ns["__file__"], "exec"), ns)
    return ns["application"]


APPS = {"env": validator(load("environ.wsgi")),
        "resp": validator(load("responses.wsgi")),
        "file": validator(load("filewrapper.wsgi"))}


def application(environ, start_response):
    # Shift one PATH_INFO segment into SCRIPT_NAME, as a mounting middleware would.
    path = environ.get("PATH_INFO", "")
    name, _, rest = path.lstrip("/").partition("/")
    app = APPS.get(name)
    if app is None:
        return not_found(environ, start_response)
    environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
    environ["PATH_INFO"] = "/" + rest
    return app(environ, start_response)
