"""mod_python.apache for oxwsgi: return codes, SERVER_RETURN, log_error, import_module,
and the handler dispatch oxwsgi runs for every mod_python phase.

Written for oxwsgi from mod_python 3.5's documentation; where mod_python 3.5 on Python 3
is broken, this module does what the documentation says (see
docs/differences-from-mod_python.md)."""

import html
import importlib
import importlib.util
import os
import sys
import threading
import time
import traceback

from mod_python import _oxwsgi

# ---- return codes and constants -----------------------------------------------------

OK = 0
DECLINED = -1
DONE = -2

HTTP_CONTINUE = 100
HTTP_SWITCHING_PROTOCOLS = 101
HTTP_PROCESSING = 102
HTTP_OK = 200
HTTP_CREATED = 201
HTTP_ACCEPTED = 202
HTTP_NON_AUTHORITATIVE = 203
HTTP_NO_CONTENT = 204
HTTP_RESET_CONTENT = 205
HTTP_PARTIAL_CONTENT = 206
HTTP_MULTI_STATUS = 207
HTTP_MULTIPLE_CHOICES = 300
HTTP_MOVED_PERMANENTLY = 301
HTTP_MOVED_TEMPORARILY = 302
HTTP_SEE_OTHER = 303
HTTP_NOT_MODIFIED = 304
HTTP_USE_PROXY = 305
HTTP_TEMPORARY_REDIRECT = 307
HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_PAYMENT_REQUIRED = 402
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_METHOD_NOT_ALLOWED = 405
HTTP_NOT_ACCEPTABLE = 406
HTTP_PROXY_AUTHENTICATION_REQUIRED = 407
HTTP_REQUEST_TIME_OUT = 408
HTTP_CONFLICT = 409
HTTP_GONE = 410
HTTP_LENGTH_REQUIRED = 411
HTTP_PRECONDITION_FAILED = 412
HTTP_REQUEST_ENTITY_TOO_LARGE = 413
HTTP_REQUEST_URI_TOO_LARGE = 414
HTTP_UNSUPPORTED_MEDIA_TYPE = 415
HTTP_RANGE_NOT_SATISFIABLE = 416
HTTP_EXPECTATION_FAILED = 417
HTTP_IM_A_TEAPOT = 418
HTTP_UNPROCESSABLE_ENTITY = 422
HTTP_LOCKED = 423
HTTP_FAILED_DEPENDENCY = 424
HTTP_UPGRADE_REQUIRED = 426
HTTP_INTERNAL_SERVER_ERROR = 500
HTTP_NOT_IMPLEMENTED = 501
HTTP_BAD_GATEWAY = 502
HTTP_SERVICE_UNAVAILABLE = 503
HTTP_GATEWAY_TIME_OUT = 504
HTTP_VERSION_NOT_SUPPORTED = 505
HTTP_VARIANT_ALSO_VARIES = 506
HTTP_INSUFFICIENT_STORAGE = 507
HTTP_NOT_EXTENDED = 510

APLOG_EMERG = 0
APLOG_ALERT = 1
APLOG_CRIT = 2
APLOG_ERR = 3
APLOG_WARNING = 4
APLOG_NOTICE = 5
APLOG_INFO = 6
APLOG_DEBUG = 7
APLOG_NOERRNO = 0

OPT_NONE = 0
OPT_INDEXES = 1
OPT_INCLUDES = 2
OPT_SYM_LINKS = 4
OPT_EXECCGI = 8
OPT_UNSET = 16
OPT_INCNOEXEC = 32
OPT_SYM_OWNER = 64
OPT_MULTI = 128
OPT_ALL = OPT_INDEXES | OPT_INCLUDES | OPT_INCNOEXEC | OPT_SYM_LINKS | OPT_EXECCGI

REMOTE_HOST = 0
REMOTE_NAME = 1
REMOTE_NOLOOKUP = 2
REMOTE_DOUBLE_REV = 3

AP_MPMQ_NOT_SUPPORTED = 0
AP_MPMQ_STATIC = 1
AP_MPMQ_DYNAMIC = 2
AP_MPMQ_MAX_DAEMON_USED = 1
AP_MPMQ_IS_THREADED = 2
AP_MPMQ_IS_FORKED = 3
AP_MPMQ_HARD_LIMIT_DAEMONS = 4
AP_MPMQ_HARD_LIMIT_THREADS = 5
AP_MPMQ_MAX_THREADS = 6
AP_MPMQ_MIN_SPARE_DAEMONS = 7
AP_MPMQ_MIN_SPARE_THREADS = 8
AP_MPMQ_MAX_SPARE_DAEMONS = 9
AP_MPMQ_MAX_SPARE_THREADS = 10
AP_MPMQ_MAX_REQUESTS_DAEMON = 11
AP_MPMQ_MAX_DAEMONS = 12


def exists_config_define(name):
    """httpd was started with -D name (what <IfDefine name> tests)."""
    return _oxwsgi.exists_config_define(str(name))


def mpm_query(code):
    """An AP_MPMQ_* value of Apache's MPM."""
    return _oxwsgi.mpm_query(int(code))

# The name of the interpreter of the handler running now (mod_python sets it per
# interpreter; oxwsgi sets it before each phase).
interpreter = None


class _HList:
    """req.hlist: the handler being run (its directive's directory and whether it is a
    <Location>), as mod_python exposes it."""

    def __init__(self, handler, directory, is_location, silent):
        self.handler, self.directory = handler, directory
        self.is_location, self.silent = is_location, silent
        self.parent = None

    def __repr__(self):
        return "<hlist %r in %r>" % (self.handler, self.directory)


class SERVER_RETURN(Exception):
    """raise SERVER_RETURN(code) ends the handler as `return code` would;
    SERVER_RETURN((code, status)) also sets req.status."""


def log_error(message, level=APLOG_ERR, server=None):
    """Write `message` to the error log (the main server's)."""
    _oxwsgi.log_error(str(message), int(level))


# ---- modules --------------------------------------------------------------------------

_import_lock = threading.RLock()
_mtimes = {}
_checked = {}
# A module's file is looked at (stat) at most once a second per process.
_CHECK_INTERVAL = 1.0


def _source_mtime(module):
    f = getattr(module, "__file__", None)
    if not f:
        return None
    try:
        return os.stat(f).st_mtime_ns
    except OSError:
        return None


def _changed(module_name, module):
    """The module's file changed since it was imported (looked at once a second)."""
    if _mtimes.get(module_name) is None:
        return False
    now = time.monotonic()
    if now - _checked.get(module_name, 0.0) < _CHECK_INTERVAL:
        return False
    _checked[module_name] = now
    return _source_mtime(module) != _mtimes[module_name]


def import_module(module_name, autoreload=1, log=0, path=None):
    """The module called `module_name`, imported on first use. With `autoreload` a module
    whose file changed since it was imported is imported again (mod_python 3.5 on
    Python 3 never reloads); the file is looked at at most once a second. With `path`, the module is looked up in those directories
    only."""
    with _import_lock:
        module = sys.modules.get(module_name)
        if module is not None and path is not None:
            f = getattr(module, "__file__", None) or ""
            if not any(f.startswith(os.path.join(p, "")) for p in path):
                module = None
        if module is not None:
            if autoreload and _changed(module_name, module):
                if log:
                    log_error("mod_python: (Re)importing module '%s'" % module_name, APLOG_NOTICE)
                module = importlib.reload(module)
                _mtimes[module_name] = _source_mtime(module)
            return module
        if log:
            log_error("mod_python: (Re)importing module '%s'" % module_name, APLOG_NOTICE)
        if path is not None:
            from importlib.machinery import PathFinder
            spec = PathFinder.find_spec(module_name, list(path))
            if spec is None:
                raise ImportError("No module named '%s' in %r" % (module_name, list(path)))
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
        else:
            module = importlib.import_module(module_name)
        _mtimes[module_name] = _source_mtime(module)
        return module


def build_cgi_env(req):
    """The CGI variables of the request, as a dict."""
    req.add_cgi_vars()
    env = req.subprocess_env.copy()
    if req.path_info and len(req.path_info) > 0:
        env["SCRIPT_NAME"] = req.uri[:-len(req.path_info)]
    else:
        env["SCRIPT_NAME"] = req.uri
    env["GATEWAY_INTERFACE"] = "Python-CGI/1.1"
    return env


class CGIStdin:
    """sys.stdin of a CGI script: the request body as text (UTF-8, undecodable bytes kept
    as surrogates); .buffer reads bytes."""

    def __init__(self, req):
        self.req = req
        self.buffer = _BodyBytes(req)

    def read(self, n=-1):
        return self.buffer.read(n).decode("utf-8", "surrogateescape")

    def readline(self, n=-1):
        return self.buffer.readline(n).decode("utf-8", "surrogateescape")

    def readlines(self, hint=-1):
        return [l.decode("utf-8", "surrogateescape") for l in self.buffer.readlines(hint)]

    def __iter__(self):
        while True:
            line = self.readline()
            if not line:
                return
            yield line


class _BodyBytes:
    def __init__(self, req):
        self.req = req

    def read(self, n=-1):
        return self.req.read(-1 if n is None else n)

    def readline(self, n=-1):
        return self.req.readline(n)

    def readlines(self, hint=-1):
        return self.req.readlines(hint)


class CGIStdout:
    """sys.stdout of a CGI script: the CGI header lines (Status, Content-Type, Location,
    others) up to the first blank line go to the response's status and headers, the rest
    is the body. .buffer writes bytes."""

    def __init__(self, req):
        self.req = req
        self.head = b""
        self.in_body = False
        self.buffer = self

    def write(self, s):
        data = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
        if self.in_body:
            self.req.write(data, 0)
            return len(s)
        self.head += data
        for sep in (b"\r\n\r\n", b"\n\n"):
            if sep in self.head:
                head, body = self.head.split(sep, 1)
                self._headers(head)
                self.in_body = True
                self.head = b""
                if body:
                    self.req.write(body, 0)
                break
        return len(s)

    def _headers(self, head):
        for line in head.decode("latin-1").splitlines():
            if not line.strip():
                continue
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            lname = name.lower()
            if lname == "status":
                self.req.status = int(value.split()[0])
            elif lname == "content-type":
                self.req.content_type = value
            else:
                if lname == "location" and self.req.status == HTTP_OK:
                    self.req.status = HTTP_MOVED_TEMPORARILY
                self.req.headers_out.add(name, value)

    def flush(self):
        if not self.in_body and self.head:
            # Output without a blank line: all of it is the body.
            head, self.head, self.in_body = self.head, b"", True
            self.req.write(head, 0)

    def writelines(self, lines):
        for line in lines:
            self.write(line)


def setup_cgi(req):
    """Point os.environ, sys.stdin and sys.stdout at the request; returns what
    restore_nocgi() puts back."""
    saved = os.environ.copy()
    si, so = sys.stdin, sys.stdout
    os.environ.update(build_cgi_env(req))
    sys.stdout = CGIStdout(req)
    sys.stdin = CGIStdin(req)
    sys.argv = [""]
    return saved, si, so


def restore_nocgi(saved, si, so):
    os.environ.clear()
    os.environ.update(saved)
    sys.stdin, sys.stdout = si, so


class table(dict):
    """A free-standing mod_python table: keys compare case-insensitively."""

    def __init__(self, *args, **kw):
        super().__init__()
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def _key(self, k):
        for existing in super().keys():
            if existing.lower() == k.lower():
                return existing
        return k

    def __getitem__(self, k):
        return super().__getitem__(self._key(k))

    def __setitem__(self, k, v):
        super().__setitem__(self._key(k), v)

    def __delitem__(self, k):
        super().__delitem__(self._key(k))

    def __contains__(self, k):
        return super().__contains__(self._key(k))

    def get(self, k, default=None):
        return super().get(self._key(k), default)

    def add(self, k, v):
        k = self._key(k)
        if super().__contains__(k):
            old = super().__getitem__(k)
            super().__setitem__(k, (old if isinstance(old, list) else [old]) + [v])
        else:
            super().__setitem__(k, v)

    def has_key(self, k):
        return k in self


# ---- the dispatch ---------------------------------------------------------------------

# What lets a stack of handlers of a phase go on to the next handler (mod_python 3.5).
_continue = {
    "postreadrequesthandler": (DECLINED, OK),
    "transhandler": (DECLINED,),
    "headerparserhandler": (DECLINED, OK),
    "inithandler": (DECLINED, OK),
    "accesshandler": (DECLINED, OK),
    "authenhandler": (DECLINED,),
    "authzhandler": (DECLINED,),
    "typehandler": (DECLINED,),
    "fixuphandler": (DECLINED, OK),
    "handler": (OK,),
    "loghandler": (DECLINED, OK),
    "cleanuphandler": (OK,),
}

_path_lock = threading.Lock()
_paths_done = set()


def _apply_path(pythonpath, directory, is_location):
    with _path_lock:
        if pythonpath is not None:
            if pythonpath in _paths_done:
                return
            newpath = eval(pythonpath, {"sys": sys, "os": os})
            _paths_done.add(pythonpath)
            # mod_python replaces sys.path. Until oxwsgi runs mod_python handlers in
            # interpreters of their own, sys.path is shared with everything else in the
            # process: entries it would drop stay, the new ones go first.
            if all(p in newpath for p in sys.path):
                sys.path[:] = newpath
            else:
                sys.path[:0] = [p for p in newpath if p not in sys.path]
        elif directory and not is_location and directory not in sys.path:
            sys.path.insert(0, directory)


def _resolve(module, obj_str, req, silent):
    obj = module
    parts = obj_str.split(".")
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            if silent:
                return None
            raise AttributeError("module '%s' contains no '%s'"
                                 % (getattr(module, "__file__", module.__name__), obj_str))
        if isinstance(obj, type) and i < len(parts) - 1:
            obj = obj(req)
    return obj


def _report_error(req, phase, hname, debug):
    etype, evalue, etb = sys.exc_info()
    try:
        lines = traceback.format_exception(etype, evalue, etb)
        for e in lines:
            req.log_error("%s %s: %s" % (phase, hname, e[:-1]), APLOG_ERR)
        if isinstance(evalue, OSError) and str(evalue).startswith("Write"):
            debug = False  # the client is gone: nothing to show it
        if not debug:
            return HTTP_INTERNAL_SERVER_ERROR
        req.status = HTTP_INTERNAL_SERVER_ERROR
        req.content_type = "text/html"
        s = '\n<pre>\nMod_python error: "%s %s"\n\n' % (phase, hname)
        for e in lines:
            s = s + html.escape(e) + "\n"
        s = s + "</pre>\n"
        req.write(s)
        return DONE
    except Exception:
        traceback.print_exc()
        return HTTP_INTERNAL_SERVER_ERROR
    finally:
        etb = None


_result_warning = ("Handler has returned result or raised SERVER_RETURN exception with "
                   "argument having non integer type. Type of value returned was %s, "
                   "whereas expected " + str(int) + ".")


def _dispatch(req, phase, handlers, debug, autoreload, pythonpath):
    """Run the handlers of `phase` in order and stop as mod_python 3.5 does; the result
    goes back to httpd."""
    global interpreter
    interpreter = req.interpreter
    result = HTTP_INTERNAL_SERVER_ERROR
    hname = None
    try:
        for spec, default_obj, directory, is_location, silent in handlers:
            hname = spec
            req.hlist = _HList(spec, directory, is_location, silent)
            module_name, _, obj_str = spec.partition("::")
            obj_str = obj_str or default_obj
            _apply_path(pythonpath, directory, is_location)
            module = import_module(module_name, autoreload=autoreload, log=debug)
            obj = _resolve(module, obj_str, req, silent)
            if obj is None and silent:
                # PythonHandlerModule without this phase's function.
                if result == HTTP_INTERNAL_SERVER_ERROR:
                    result = DECLINED
                continue
            try:
                result = obj(req)
            except SERVER_RETURN as value:
                if len(value.args) == 2:
                    result, status = value.args
                    if status:
                        req.status = status
                elif value.args and isinstance(value.args[0], tuple) and len(value.args[0]) == 2:
                    result, status = value.args[0]
                    if status:
                        req.status = status
                elif value.args:
                    result = value.args[0]
                else:
                    result = OK
            if result.__class__ is not int:
                raise AssertionError(_result_warning % result.__class__)
            if result not in _continue.get(default_obj, (OK,)):
                break
    except BaseException:
        result = _report_error(req, phase, hname, debug)
    return result


def _import_dispatch(name, interpreter_name, pythonpath=None):
    """PythonImport module[::function] interpreter (with the main server's PythonPath)."""
    global interpreter
    interpreter = interpreter_name
    _apply_path(pythonpath, None, False)
    module_name, _, func = name.partition("::")
    module = import_module(module_name, autoreload=0)
    if func:
        getattr(module, func)()


def _filter_dispatch(filter, spec, directory, debug, autoreload, pythonpath):
    """One call of a PythonOutputFilter: on an error, log it (and with PythonDebug show it
    in the output); the data of that call is dropped and the rest goes through
    unfiltered, as mod_python."""
    module_name, _, obj_str = spec.partition("::")
    try:
        _apply_path(pythonpath, directory, False)
        module = import_module(module_name, autoreload=autoreload, log=debug)
        default = "inputfilter" if filter.is_input else "outputfilter"
        obj = _resolve(module, obj_str or default, filter.req, False)
        obj(filter)
    except BaseException:
        etype, evalue, etb = sys.exc_info()
        lines = traceback.format_exception(etype, evalue, etb)
        etb = None
        for e in lines:
            filter.req.log_error("%s %s: %s" % (filter.name, spec, e[:-1]), APLOG_ERR)
        filter.disable()
        if debug and not filter.closed:
            s = '\n<pre>\nMod_python error: "%s %s"\n\n' % (filter.name, spec)
            filter.write(s + "".join(html.escape(e) + "\n" for e in lines) + "</pre>\n")
