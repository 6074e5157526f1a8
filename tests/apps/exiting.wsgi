"""Exit work a worker must run when it exits (graceful restart, reload, stop): on import
this registers an atexit callback, a weakref.finalize callback and a buffered logging
handler that only writes at logging.shutdown(); each writes <state>/exit-<pid>.<what>.
`/exit/hang` starts a non-daemon thread that never ends (it must not keep the worker
alive), `/exit/pid` answers the worker's pid."""

import atexit
import logging
import logging.handlers
import os
import threading
import weakref

from apputil import STATE_DIR, dispatch, respond_json


def _mark(what):
    with open(os.path.join(STATE_DIR, f"exit-{os.getpid()}.{what}"), "w") as f:
        f.write(what)


atexit.register(_mark, "atexit")


class _Resource:
    pass


_resource = _Resource()
weakref.finalize(_resource, _mark, "finalize")


class _MarkHandler(logging.Handler):
    def emit(self, record):
        _mark("logging")


_logger = logging.getLogger("oxwsgi.tests.exiting")
_logger.addHandler(logging.handlers.MemoryHandler(capacity=1000, flushLevel=logging.CRITICAL + 1,
                                                  target=_MarkHandler()))
_logger.propagate = False


def pid(environ, start_response):
    _logger.warning("buffered until logging.shutdown()")
    return respond_json(start_response, {"pid": os.getpid()})


def hang(environ, start_response):
    # daemon=False explicitly: a thread started from a server thread (a "dummy" thread to
    # Python, daemon) would otherwise inherit daemon=True.
    threading.Thread(target=threading.Event().wait, name="never-ending-worker-thread", daemon=False).start()
    return respond_json(start_response, {"pid": os.getpid()})


application = dispatch({"pid": pid, "hang": hang})
