"""mod_python.Session for oxwsgi: sessions kept across requests by a cookie (`pysid`).

FileSession (one pickle file per session), DbmSession (one dbm file) and MemorySession
(this process only); `Session(req)` picks the type from `PythonOption
mod_python.session.session_type`, else MemorySession for a single multi-threaded process
and DbmSession otherwise, as mod_python. A session is locked (an flock on a per-session
lock file, which holds across processes and threads) from creation until the request
ends. Written for oxwsgi from mod_python 3.5's documentation; signed session cookies
(`secret=`) work, unlike mod_python 3.5's on Python >= 3.8."""

import dbm.dumb
import fcntl
import os
import pickle
import random
import re
import secrets
import tempfile
import threading
import time

from mod_python import Cookie, apache

COOKIE_NAME = "pysid"
DFT_TIMEOUT = 30 * 60
CLEANUP_CHANCE = 1000

_SID = re.compile(r"^[0-9a-f]{32}$")


def _new_sid():
    return secrets.token_hex(16)


def _opt(opts, *names, default=None):
    for n in names:
        if n in opts:
            return opts[n]
    return default


def _true(v):
    return str(v).lower() in ("1", "on", "true", "yes")


def _lock_dir(req):
    d = os.path.join(_opt(req.get_options(), "mod_python.session.database_directory",
                          default=tempfile.gettempdir()), "mp_sess_locks")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


class BaseSession(dict):
    """The session: a dict, loaded from the store when the request's cookie names a live
    session, saved by save()."""

    def __init__(self, req, sid=None, secret=None, lock=1, timeout=0):
        super().__init__()
        self._req, self._lock, self._locked = req, lock, False
        self._lockfile = None
        self._new, self._invalid = 1, 0
        self._created = self._accessed = time.time()
        self._timeout = timeout or DFT_TIMEOUT
        self._secret = secret
        self._sid = sid
        opts = req.get_options()
        self._cookie_name = _opt(opts, "mod_python.session.cookie_name", "session_cookie_name",
                                 default=COOKIE_NAME)
        if not self._sid:
            if secret:
                cookie = Cookie.get_cookie(req, self._cookie_name, Cookie.SignedCookie, secret=secret)
                if cookie is not None and not isinstance(cookie, Cookie.SignedCookie):
                    cookie = None  # bad signature
            else:
                cookie = Cookie.get_cookie(req, self._cookie_name)
            if cookie is not None:
                self._sid = cookie.value
        if self._sid and not _SID.match(self._sid):
            if sid:
                raise ValueError("Invalid Session ID: sid=%s" % sid)
            self._sid = None
        self.init_lock()
        if self._sid:
            self.lock()
            if self.load():
                self._new = 0
        if self._new:
            if self._sid:
                self.unlock()
            self._sid = _new_sid()
            self.lock()
            Cookie.add_cookie(req, self.make_cookie())
            self._created = time.time()
            self._timeout = timeout or DFT_TIMEOUT
        self._accessed = time.time()
        if random.randint(1, CLEANUP_CHANCE) == 1:
            self.cleanup()

    def make_cookie(self):
        if self._secret:
            c = Cookie.SignedCookie(self._cookie_name, self._sid, secret=self._secret)
        else:
            c = Cookie.Cookie(self._cookie_name, self._sid)
        opts = self._req.get_options()
        path = _opt(opts, "mod_python.session.application_path", "ApplicationPath")
        c.path = path if path else "/"
        return c

    def invalidate(self):
        c = self.make_cookie()
        c.expires = 0
        Cookie.add_cookie(self._req, c)
        self.delete()
        self._invalid = 1

    def load(self):
        data = self.do_load()
        if data is None:
            return 0
        if time.time() - data["_accessed"] > data["_timeout"]:
            return 0
        self._created = data["_created"]
        self._accessed = data["_accessed"]
        self._timeout = data["_timeout"]
        self.update(data["_data"])
        return 1

    def save(self):
        if not self._invalid:
            self.do_save({"_data": self.copy(), "_created": self._created,
                          "_accessed": self._accessed, "_timeout": self._timeout})

    def delete(self):
        self.do_delete()
        self.clear()

    def init_lock(self):
        pass

    def lock(self):
        if not self._lock or self._locked:
            return
        f = open(os.path.join(_lock_dir(self._req), self._sid + ".lock"), "a+b")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        self._lockfile, self._locked = f, True
        self._req.register_cleanup(_unlock, self)

    def unlock(self):
        if self._locked and self._lockfile is not None:
            try:
                fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_UN)
            finally:
                self._lockfile.close()
        self._lockfile, self._locked = None, False

    def is_new(self):
        return not not self._new

    def id(self):
        return self._sid

    def created(self):
        return self._created

    def last_accessed(self):
        return self._accessed

    def timeout(self):
        return self._timeout

    def set_timeout(self, secs):
        self._timeout = secs

    def cleanup(self):
        self.do_cleanup()

    def do_cleanup(self):
        pass


def _unlock(sess):
    sess.unlock()


class FileSession(BaseSession):
    """One pickle file per session under mod_python.file_session.database_directory
    (default: the temporary directory) / mp_sess."""

    def __init__(self, req, sid=0, secret=None, timeout=0, lock=1, fast_cleanup=True,
                 verify_cleanup=True):
        opts = req.get_options()
        base = _opt(opts, "mod_python.file_session.database_directory",
                    "mod_python.session.database_directory", "session_directory",
                    default=tempfile.gettempdir())
        self._sessdir = os.path.join(base, "mp_sess")
        BaseSession.__init__(self, req, sid=sid, secret=secret, lock=lock, timeout=timeout)

    def _path(self):
        return os.path.join(self._sessdir, self._sid[:2], self._sid)

    def do_load(self):
        try:
            with open(self._path(), "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    def do_save(self, data):
        path = self._path()
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = "%s.%d.%d.tmp" % (path, os.getpid(), threading.get_ident())
        with open(tmp, "wb") as f:
            pickle.dump(data, f)
        os.replace(tmp, path)

    def do_delete(self):
        try:
            os.unlink(self._path())
        except OSError:
            pass

    def do_cleanup(self):
        now = time.time()
        for root, _, files in os.walk(self._sessdir):
            for name in files:
                p = os.path.join(root, name)
                try:
                    if now - os.stat(p).st_mtime > self._timeout + 240:
                        os.unlink(p)
                except OSError:
                    pass


class DbmSession(BaseSession):
    """Every session in one dbm file (mod_python.dbm_session.database_filename, default
    <tmp>/mp_sess.dbm), guarded by a lock file."""

    def __init__(self, req, dbm=None, sid=0, secret=None, dbmtype=None, timeout=0, lock=1):
        opts = req.get_options()
        if dbm is None:
            dbm = _opt(opts, "mod_python.dbm_session.database_filename", "session_dbm")
            if dbm is None:
                d = _opt(opts, "mod_python.dbm_session.database_directory",
                         "mod_python.session.database_directory", default=tempfile.gettempdir())
                dbm = os.path.join(d, "mp_sess.dbm")
        self._dbmfile = dbm
        BaseSession.__init__(self, req, sid=sid, secret=secret, lock=lock, timeout=timeout)

    def _with_dbm(self, f):
        with open(self._dbmfile + ".lock", "a+b") as lk:
            fcntl.flock(lk.fileno(), fcntl.LOCK_EX)
            db = dbm.dumb.open(self._dbmfile, "c")
            try:
                return f(db)
            finally:
                db.close()

    def do_load(self):
        def load(db):
            raw = db.get(self._sid.encode())
            return pickle.loads(raw) if raw is not None else None
        return self._with_dbm(load)

    def do_save(self, data):
        def save(db):
            db[self._sid.encode()] = pickle.dumps(data)
        self._with_dbm(save)

    def do_delete(self):
        def delete(db):
            try:
                del db[self._sid.encode()]
            except KeyError:
                pass
        self._with_dbm(delete)

    def do_cleanup(self):
        def cleanup(db):
            now = time.time()
            for k in list(db.keys()):
                try:
                    d = pickle.loads(db[k])
                    if now - d["_accessed"] > d["_timeout"]:
                        del db[k]
                except Exception:
                    del db[k]
        self._with_dbm(cleanup)


_memory = {}
_memory_lock = threading.Lock()


class MemorySession(BaseSession):
    """Sessions in this process's memory (lost when it exits; not shared between
    processes)."""

    def __init__(self, req, sid=0, secret=None, timeout=0, lock=1):
        BaseSession.__init__(self, req, sid=sid, secret=secret, lock=lock, timeout=timeout)

    def do_load(self):
        with _memory_lock:
            d = _memory.get(self._sid)
            return pickle.loads(d) if d is not None else None

    def do_save(self, data):
        with _memory_lock:
            _memory[self._sid] = pickle.dumps(data)

    def do_delete(self):
        with _memory_lock:
            _memory.pop(self._sid, None)

    def do_cleanup(self):
        now = time.time()
        with _memory_lock:
            for k in list(_memory):
                d = pickle.loads(_memory[k])
                if now - d["_accessed"] > d["_timeout"]:
                    del _memory[k]


def Session(req, sid=0, secret=None, timeout=0, lock=1):
    """A session of the type PythonOption mod_python.session.session_type names
    (FileSession, DbmSession, MemorySession); without it MemorySession when Apache runs
    one multi-threaded process, else DbmSession."""
    opts = req.get_options()
    kind = _opt(opts, "mod_python.session.session_type", "session")
    if kind is None:
        kind = "MemorySession" if _single_threaded_process() else "DbmSession"
    classes = {"FileSession": FileSession, "DbmSession": DbmSession, "MemorySession": MemorySession}
    if kind not in classes:
        raise ValueError("Unknown session type %s" % kind)
    return classes[kind](req, sid=sid, secret=secret, timeout=timeout, lock=lock)


def _single_threaded_process():
    threaded = apache.mpm_query(apache.AP_MPMQ_IS_THREADED)
    forked = apache.mpm_query(apache.AP_MPMQ_IS_FORKED)
    daemons = apache.mpm_query(apache.AP_MPMQ_MAX_DAEMONS)
    return bool(threaded) and (not forked or daemons == 1)
