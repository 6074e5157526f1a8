"""mod_python.cgihandler for oxwsgi: run CGI scripts written in Python in the server
process.

    <Directory /srv/cgi>
        SetHandler mod_python
        PythonHandler mod_python.cgihandler
    </Directory>

The script runs as a module named after its file (as mod_python runs it, so an
`if __name__ == "__main__":` block does not run), with os.environ holding the CGI
variables, sys.stdin reading the request body and sys.stdout writing the response (CGI
headers first: Status, Content-Type, Location and others, then a blank line). Scripts run one at a time (they
share os.environ, sys.stdin/stdout and the working directory, which is the script's
directory while it runs). Written for oxwsgi from mod_python 3.5's documentation; unlike
mod_python 3.5 on Python 3, sys.stdin works (str, with .buffer for bytes) and importing
the handler does not empty os.environ for everything else in the process."""

import os
import sys
import threading

from mod_python import apache

_lock = threading.Lock()


def handler(req):
    filename = req.subprocess_env.get("SCRIPT_FILENAME") or req.filename
    if not filename or not os.path.isfile(filename):
        raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
    with open(filename, "rb") as f:
        code = compile(f.read(), filename, "exec")
    with _lock:
        cwd = os.getcwd()
        env, si, so = apache.setup_cgi(req)
        try:
            os.chdir(os.path.dirname(filename))
            try:
                name = os.path.splitext(os.path.basename(filename))[0]
                exec(code, {"__name__": name, "__file__": filename, "__builtins__": __builtins__})
            except SystemExit as e:
                if e.code not in (None, 0):
                    raise
            sys.stdout.flush()
        finally:
            apache.restore_nocgi(env, si, so)
            os.chdir(cwd)
    return apache.OK
