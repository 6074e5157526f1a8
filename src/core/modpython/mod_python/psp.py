"""mod_python.psp for oxwsgi: Python Server Pages.

    <Directory /srv/site>
        AddHandler mod_python .psp
        PythonHandler mod_python.psp
    </Directory>

A page is text with `<% code %>`, `<%= expression %>`, `<%@ include file="x" %>` and
`<%-- comment --%>`. The indentation of a code block's last line carries over to the text
after it (one level more when that line ends with `:`), and an empty `<% %>` returns to
no indentation, so `<% for x in y: %>...<% %>` repeats the text in between. Code of a
block written over several lines is indented as written; a block on one line goes at the
current level. Pages see `req`, `psp`, and, when they use them, `form`
(util.FieldStorage) and `session` (Session.Session, saved after the page ran).

Written for oxwsgi from mod_python 3.5's documentation (a parser of its own in Python;
mod_python's is generated C)."""

import html
import os
import re
import threading

from mod_python import apache, util

_TOKEN = re.compile(r"<%--.*?--%>|<%@.*?%>|<%=.*?%>|<%.*?%>", re.S)
_INCLUDE = re.compile(r'^<%@\s*include\s+file\s*=\s*"([^"]*)"\s*%>$', re.S)


class PSPError(Exception):
    pass


def _translate(text, directory, depth=0):
    """Python source for a page."""
    out = []
    indent = ""

    def emit(line):
        out.append(indent + line)

    pos = 0
    for m in _TOKEN.finditer(text):
        if m.start() > pos:
            emit("req.write(%r, 0)" % text[pos:m.start()])
        tok = m.group(0)
        pos = m.end()
        if tok.startswith("<%--"):
            continue
        if tok.startswith("<%@"):
            inc = _INCLUDE.match(tok)
            if not inc:
                raise PSPError("unknown directive %r (only include file=\"...\")" % tok)
            if depth > 20:
                raise PSPError("includes nested too deep at %r" % inc.group(1))
            path = os.path.join(directory or ".", inc.group(1))
            with open(path) as f:
                sub = _translate(f.read(), os.path.dirname(path), depth + 1)
            for line in sub.splitlines():
                emit(line)
            continue
        if tok.startswith("<%="):
            emit("req.write(str(%s), 0)" % tok[3:-2].strip())
            continue
        body = tok[2:-2]
        if "\n" not in body:
            # A one-line block goes at the current indentation.
            line = body.strip()
            lines = [indent + line] if line else []
        else:
            # Several lines: as written (indentation is absolute, as in mod_python).
            lines = [l.rstrip() for l in body.strip("\n").splitlines()]
        out.extend(lines)
        last = next((l for l in reversed(lines) if l.strip()), "")
        indent = last[:len(last) - len(last.lstrip())]
        if last.split("#", 1)[0].rstrip().endswith(":"):
            indent += "    "
    if pos < len(text):
        emit("req.write(%r, 0)" % text[pos:])
    return "\n".join(out) + "\n"


def parse(filename, dir=None):
    """The Python source of the page in `filename` (relative to `dir`)."""
    path = os.path.join(dir, filename) if dir else filename
    with open(path) as f:
        return _translate(f.read(), os.path.dirname(path))


def parsestring(s):
    """The Python source of the page text `s`."""
    return _translate(s, None)


_cache = {}
_cache_lock = threading.Lock()


def _compiled(filename):
    mtime = os.stat(filename).st_mtime_ns
    with _cache_lock:
        hit = _cache.get(filename)
        if hit and hit[0] == mtime:
            return hit[1]
    code = compile(parse(filename), filename, "exec")
    with _cache_lock:
        _cache[filename] = (mtime, code)
    return code


class PSP:
    """A page: PSP(req, filename=None, string=None, vars={}); run() sends it."""

    def __init__(self, req, filename=None, string=None, vars={}):
        if filename is None and string is None:
            filename = req.filename
        if filename is not None and not os.path.isabs(filename):
            filename = os.path.join(os.path.dirname(req.filename or ""), filename)
        self.req, self.filename, self.string = req, filename, string
        self.vars = dict(vars)
        self.error_page = None

    def _code(self):
        if self.string is not None:
            return compile(parsestring(self.string), "<string>", "exec")
        if not os.path.isfile(self.filename):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_FOUND)
        return _compiled(self.filename)

    def set_error_page(self, page):
        self.error_page = PSP(self.req, filename=page)

    def apply_data(self, obj):
        if not hasattr(self.req, "form"):
            self.req.form = util.FieldStorage(self.req, keep_blank_values=1)
        return util.apply_fs_data(obj, self.req.form, req=self.req)

    def run(self, vars={}, flush=0):
        code = self._code()
        g = {"req": self.req, "psp": self}
        names = set(code.co_names)
        if "form" in names:
            if not hasattr(self.req, "form"):
                self.req.form = util.FieldStorage(self.req, keep_blank_values=1)
            g["form"] = self.req.form
        session = None
        if "session" in names:
            session = getattr(self.req, "session", None)
            if session is None:
                from mod_python import Session
                session = self.req.session = Session.Session(self.req)
            g["session"] = session
        g.update(self.vars)
        g.update(vars)
        try:
            exec(code, g)
        except Exception:
            if self.error_page is None:
                raise
            import sys
            self.error_page.run({"exception": sys.exc_info()})
        finally:
            if session is not None:
                session.save()
        if flush:
            self.req.flush()

    def display_code(self):
        """The page's Python source, as HTML."""
        src = parsestring(self.string) if self.string is not None else parse(self.filename)
        return "<pre>%s</pre>" % html.escape(src)

    def __str__(self):
        self.req.content_type = "text/html"
        self.run()
        return ""


def handler(req):
    if not req._content_type_set:
        req.content_type = "text/html"
    PSP(req).run()
    return apache.OK
