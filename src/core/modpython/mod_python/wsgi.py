"""mod_python.wsgi for oxwsgi: run a WSGI application as a mod_python handler.

    PythonHandler mod_python.wsgi
    PythonOption mod_python.wsgi.application mymodule::application
    PythonOption mod_python.wsgi.base_uri /app

Written for oxwsgi from mod_python 3.5's documentation. Under oxwsgi the better road is
WSGIScriptAlias (docs/mod_python-migration.md); this keeps a configuration that uses it
working unchanged."""

import sys

from mod_python import apache


class _Input:
    """wsgi.input over req."""

    def __init__(self, req):
        self.req = req

    def read(self, size=-1):
        return self.req.read(-1 if size is None else size)

    def readline(self, size=-1):
        return self.req.readline(-1 if size is None else size)

    def readlines(self, hint=-1):
        return self.req.readlines(hint)

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def _environ(req, base_uri):
    env = dict(apache.build_cgi_env(req))
    uri = req.uri
    if base_uri and uri.startswith(base_uri):
        env["SCRIPT_NAME"] = base_uri.rstrip("/") if base_uri != "/" else ""
        env["PATH_INFO"] = uri[len(env["SCRIPT_NAME"]):]
    else:
        env["SCRIPT_NAME"] = ""
        env["PATH_INFO"] = uri
    env["wsgi.input"] = _Input(req)
    env["wsgi.errors"] = sys.stderr
    env["wsgi.version"] = (1, 0)
    env["wsgi.multithread"] = True
    env["wsgi.multiprocess"] = True
    env["wsgi.run_once"] = False
    env["wsgi.url_scheme"] = "https" if req.is_https() else "http"
    return env


def handler(req):
    options = req.get_options()
    spec = options.get("mod_python.wsgi.application")
    if not spec:
        raise ValueError("mod_python.wsgi: set PythonOption mod_python.wsgi.application module::callable")
    module_name, _, obj = spec.partition("::")
    app = getattr(apache.import_module(module_name), obj or "application")
    env = _environ(req, options.get("mod_python.wsgi.base_uri", ""))
    state = {"started": False}

    def start_response(status, headers, exc_info=None):
        if exc_info and state["started"]:
            raise exc_info[1].with_traceback(exc_info[2])
        req.status = int(status.split(" ", 1)[0])
        for k, v in headers:
            if k.lower() == "content-type":
                req.content_type = v
            else:
                req.headers_out.add(k, v)
        return req.write

    result = app(env, start_response)
    try:
        for chunk in result:
            if chunk:
                req.write(chunk, 0)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return apache.OK
