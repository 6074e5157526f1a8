"""mod_python.publisher for oxwsgi: URLs publish a module's functions and objects.

    <Directory /srv/site>
        SetHandler mod_python
        PythonHandler mod_python.publisher
    </Directory>

`/site/page.py/hello?name=x` (or `/site/page/hello`) calls `hello(name='x')` of
`/srv/site/page.py` (a `req` parameter gets the request) and sends what it returns; no
function name means `index`, no module `index.py`. Names starting with `_` are never
published; `__auth__`, `__access__` and `__auth_realm__` on the module or along the path
guard what is below them with Basic authentication.

Written for oxwsgi from mod_python 3.5's documentation. Unlike mod_python 3.5 on Python 3,
POSTed arguments reach the function (as str) and `__auth__` logins work."""

import base64
import binascii
import importlib.util
import os
import re
import threading
import types

from mod_python import apache, util

_cache = {}
_cache_lock = threading.Lock()


def _load(path):
    """The module of the file at path, imported again when the file changed."""
    mtime = os.stat(path).st_mtime_ns
    with _cache_lock:
        hit = _cache.get(path)
        if hit is not None and hit[0] == mtime:
            return hit[1]
        spec = importlib.util.spec_from_file_location("_mp_published_" + re.sub(r"\W", "_", path), path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _cache[path] = (mtime, module)
        return module


def _credentials(req):
    header = req.headers_in.get("Authorization")
    if not header:
        return None, None
    scheme, _, cred = header.partition(" ")
    if scheme.lower() != "basic":
        raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
    try:
        decoded = base64.b64decode(cred.strip(), validate=True).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError):
        raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
    user, _, passwd = decoded.partition(":")
    return user, passwd


def _process_auth(req, obj, realm="unknown", user=None, passwd=None):
    realm = getattr(obj, "__auth_realm__", realm)
    auth = getattr(obj, "__auth__", None)
    access = getattr(obj, "__access__", None)
    if auth is None and access is None:
        return realm, user, passwd
    if user is None:
        user, passwd = _credentials(req)
    if auth is not None:
        if callable(auth):
            ok = auth(req, user, passwd)
        elif isinstance(auth, dict):
            ok = user is not None and user in auth and auth[user] == passwd
        else:
            ok = auth
        if not ok:
            req.err_headers_out["WWW-Authenticate"] = 'Basic realm="%s"' % realm
            raise apache.SERVER_RETURN(apache.HTTP_UNAUTHORIZED)
    if access is not None:
        if callable(access):
            ok = access(req, user)
        elif isinstance(access, (list, tuple, set)):
            ok = user in access
        else:
            ok = access
        if not ok:
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    if user:
        req.user = user
    return realm, user, passwd


# Never traversed into: modules, classes, built-in functions, and the types of the types
# module (functions, methods, generators...) other than what users define.
_STDLIB_TYPES = tuple(t for t in vars(types).values() if isinstance(t, type))
_NOT_PUBLISHABLE = (types.ModuleType, types.BuiltinFunctionType, type)


def _traversable(obj):
    return not isinstance(obj, _NOT_PUBLISHABLE) and type(obj) not in _STDLIB_TYPES


def _resolve(req, module, path, realm, user, passwd):
    obj = module
    first = True
    for name in path.split("."):
        if not name or name.startswith("_"):
            req.log_error("mod_python.publisher: cannot traverse %r in %s" % (name, req.unparsed_uri),
                          apache.APLOG_WARNING)
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        if not first and not _traversable(obj):
            raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
        first = False
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        realm, user, passwd = _process_auth(req, obj, realm, user, passwd)
    if isinstance(obj, _NOT_PUBLISHABLE):
        raise apache.SERVER_RETURN(apache.HTTP_FORBIDDEN)
    return obj


def _publish(req, obj):
    if callable(obj):
        req.form = util.FieldStorage(req, keep_blank_values=1)
        return _publish(req, util.apply_fs_data(obj, req.form, req=req))
    if obj is None:
        return False
    result = obj if isinstance(obj, bytes) else str(obj)
    if not req._content_type_set:
        tail = result[-100:]
        html = re.search(rb"</HTML\s*>\s*$" if isinstance(tail, bytes) else r"</HTML\s*>\s*$", tail, re.I)
        req.content_type = "text/html" if html else "text/plain"
    req.write(result, 0)
    return True


def handler(req):
    req.allow_methods(["GET", "POST", "HEAD"])
    if req.method not in ("GET", "POST", "HEAD"):
        raise apache.SERVER_RETURN(apache.HTTP_METHOD_NOT_ALLOWED)
    if not req.filename:
        raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    path, module_name = os.path.split(req.filename)
    module_name = re.sub(r"\.py$", "", module_name) or "index"
    func_path = (req.path_info or "")[1:].rstrip("/")
    filename = os.path.join(path, module_name + ".py")
    if not os.path.isfile(filename):
        func_path = module_name + ("/" + func_path if func_path else "")
        filename = os.path.join(path, "index.py")
        if not os.path.isfile(filename):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    req.filename = os.path.normpath(filename)
    module = _load(req.filename)
    realm, user, passwd = _process_auth(req, module)
    obj = _resolve(req, module, (func_path or "index").replace("/", "."), realm, user, passwd)
    _publish(req, obj)
    return apache.OK
