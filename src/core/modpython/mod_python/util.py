"""mod_python.util for oxwsgi: FieldStorage (with multipart uploads), parse_qs,
parse_qsl, redirect. Written for oxwsgi from mod_python 3.5's documentation.

Types follow mod_python 3.5 on Python 3 (Debian 12), which handlers ported to it rely
on: every field value is a StringField, a bytes subclass; names from the query string
and from multipart bodies are str, names from an urlencoded body are bytes."""

import re
import tempfile
from urllib.parse import unquote_to_bytes

from mod_python import apache


# ---- query strings --------------------------------------------------------------------

def _split_qs(qs, keep_blank_values, strict_parsing):
    as_bytes = isinstance(qs, (bytes, bytearray))
    data = bytes(qs) if as_bytes else qs.encode("utf-8", "surrogateescape")
    out = []
    for part in re.split(rb"[&;]", data):
        if not part:
            continue
        if b"=" in part:
            k, v = part.split(b"=", 1)
        elif strict_parsing:
            raise ValueError("bad query field: %r" % (part,))
        elif keep_blank_values:
            k, v = part, b""
        else:
            continue
        if not v and not keep_blank_values:
            continue
        k = unquote_to_bytes(k.replace(b"+", b" "))
        v = unquote_to_bytes(v.replace(b"+", b" "))
        if not as_bytes:
            k = k.decode("utf-8", "surrogateescape")
            v = v.decode("utf-8", "surrogateescape")
        out.append((k, v))
    return out


def parse_qsl(qs, keep_blank_values=0, strict_parsing=0):
    """The (name, value) pairs of a query string, in order; bytes in, bytes out.
    (mod_python 3.5's C version garbles short names on Python 3; this one does not.)"""
    return _split_qs(qs, keep_blank_values, strict_parsing)


def parse_qs(qs, keep_blank_values=0, strict_parsing=0):
    """A dict of name -> list of values."""
    d = {}
    for k, v in _split_qs(qs, keep_blank_values, strict_parsing):
        d.setdefault(k, []).append(v)
    return d


# ---- fields ---------------------------------------------------------------------------

class Field:
    """One form field: name, value, and for an upload file, filename, type, headers."""

    def __init__(self, name, *args, **kwargs):
        self.name = name
        self.file = None
        self.filename = None
        self.type = None
        self.type_options = {}
        self.disposition = None
        self.disposition_options = {}
        self.headers = {}
        for k, v in kwargs.items():
            setattr(self, k, v)

    def __repr__(self):
        return "Field(%r, %r)" % (self.name, self.value)

    @property
    def value(self):
        if self.file is None:
            return None
        self.file.seek(0)
        v = self.file.read()
        self.file.seek(0)
        return v

    def __del__(self):
        f = self.__dict__.get("file")
        if f is not None:
            try:
                f.close()
            except Exception:
                pass


class StringField(bytes):
    """A field value: bytes (mod_python 3.5 on Python 3 encodes str as UTF-8), with the
    field's attributes; `.value` is the value as parsed (str from a query string, bytes
    from a body), as mod_python 3.5 has it."""

    filename = None
    headers = {}
    ctype = "text/plain"
    type = None
    type_options = {}
    disposition = None
    disposition_options = {}
    disp_options = None

    def __new__(cls, value):
        if isinstance(value, str):
            value = value.encode("utf-8")
        return bytes.__new__(cls, value)

    def __init__(self, value):
        self.value = value

    def __getattr__(self, name):
        if name != "file":
            raise AttributeError(name)
        import io
        self.file = io.BytesIO(bytes(self))
        return self.file

    def __repr__(self):
        return "Field(%r, %r)" % (getattr(self, "name", None), self.value)


class FieldList(list):
    pass


def parse_header(line):
    """('form-data', {'name': 'a'}) for 'form-data; name="a"' (str in, str out)."""
    parts = [p.strip() for p in _split_params(line)]
    key = parts[0].lower() if parts else ""
    pdict = {}
    for p in parts[1:]:
        if "=" in p:
            name, value = p.split("=", 1)
            name = name.strip().lower()
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace('\\\\', '\\').replace('\\"', '"')
            pdict[name] = value
    return key, pdict


def _split_params(line):
    out, cur, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


class FieldStorage:
    """The request's form fields: the query string, then an urlencoded or multipart
    POST body (read from req). Uploaded files go to temporary files (or to
    file_callback(filename)'s file)."""

    def __init__(self, req, keep_blank_values=0, strict_parsing=0, file_callback=None,
                 field_callback=None):
        self.list = FieldList()
        if req.args:
            for k, v in parse_qsl(req.args, keep_blank_values, strict_parsing):
                self.add_field(k, v)
        if req.method != "POST":
            return
        try:
            clen = int(req.headers_in["content-length"])
        except (KeyError, ValueError):
            clen = -1  # a chunked body: read to its end (mod_python answers 411)
        ctype = req.headers_in.get("content-type", "application/x-www-form-urlencoded")
        if ctype.startswith("application/x-www-form-urlencoded"):
            body = req.read(clen)
            for k, v in parse_qsl(body, keep_blank_values, strict_parsing):
                self.add_field(k, v)
            return
        if not ctype.startswith("multipart/"):
            raise apache.SERVER_RETURN(apache.HTTP_NOT_IMPLEMENTED)
        _, opts = parse_header(ctype)
        boundary = opts.get("boundary")
        if not boundary:
            raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
        self._read_multipart(req, boundary.encode("latin-1"), file_callback, field_callback)

    def _read_multipart(self, req, boundary, file_callback, field_callback):
        sep = b"--" + boundary
        # Skip the preamble.
        while True:
            line = req.readline()
            if not line:
                return
            if line.rstrip(b"\r\n") == sep:
                break
            if line.rstrip(b"\r\n") == sep + b"--":
                return
        while True:
            headers = {}
            while True:
                line = req.readline()
                if not line:
                    raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
                line = line.rstrip(b"\r\n")
                if not line:
                    break
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            disp, dopts = parse_header(headers.get("content-disposition", ""))
            ctype, topts = parse_header(headers.get("content-type", "text/plain"))
            name = dopts.get("name")
            filename = dopts.get("filename")
            if filename is not None:
                f = file_callback(filename) if file_callback else tempfile.TemporaryFile("w+b")
            elif field_callback:
                f = field_callback()
            else:
                import io
                f = io.BytesIO()
            last = self._copy_part(req, sep, f)
            f.seek(0)
            if filename is not None:
                field = Field(name)
                field.file = f
                field.filename = filename
            else:
                field = StringField(f.read())
                field.name = name
                field.value = bytes(field)
            field.type = ctype
            field.type_options = topts
            field.disposition = disp
            field.disposition_options = dopts
            field.headers = headers
            self.list.append(field)
            if last:
                return

    def _copy_part(self, req, sep, f):
        """Copy one part's body to f; True when it was the last part."""
        held = b""  # the line end before a boundary belongs to the boundary
        while True:
            line = req.readline(65536)
            if not line:
                raise apache.SERVER_RETURN(apache.HTTP_BAD_REQUEST)
            stripped = line.rstrip(b"\r\n")
            if stripped == sep or stripped == sep + b"--":
                return stripped.endswith(b"--")
            f.write(held)
            if line.endswith(b"\r\n"):
                f.write(line[:-2])
                held = b"\r\n"
            elif line.endswith(b"\n"):
                f.write(line[:-1])
                held = b"\n"
            else:
                f.write(line)
                held = b""

    def add_field(self, key, value):
        item = StringField(value)
        item.name = key
        self.list.append(item)

    def __setitem__(self, key, value):
        self.list[:] = [f for f in self.list if f.name != key]
        self.add_field(key, value)

    def __getitem__(self, key):
        found = [f for f in self.list if f.name == key]
        if not found:
            raise KeyError(key)
        return found[0] if len(found) == 1 else found

    def get(self, key, default):
        try:
            return self[key]
        except KeyError:
            return default

    def getfirst(self, key, default=None):
        for f in self.list:
            if f.name == key:
                return f
        return default

    def getlist(self, key):
        return [f for f in self.list if f.name == key]

    def keys(self):
        seen = []
        for f in self.list:
            if f.name not in seen:
                seen.append(f.name)
        return seen

    def __iter__(self):
        return iter(self.keys())

    def has_key(self, key):
        return any(f.name == key for f in self.list)

    __contains__ = has_key

    def __len__(self):
        return len(self.keys())

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def __delitem__(self, key):
        if not self.has_key(key):
            raise KeyError(key)
        self.list[:] = [f for f in self.list if f.name != key]

    def clear(self):
        self.list[:] = []

    def __repr__(self):
        return repr(self.list)


def redirect(req, location, permanent=0, text=None):
    """Redirect the client to `location` (302, or 301 with permanent) and end the
    handler (raises SERVER_RETURN(DONE))."""
    if not isinstance(location, str):
        raise TypeError("location must be of type str")
    if req.sent_bodyct:
        raise IOError("Cannot redirect after headers have already been sent.")
    req.err_headers_out["Location"] = location
    req.status = apache.HTTP_MOVED_PERMANENTLY if permanent else apache.HTTP_MOVED_TEMPORARILY
    if text is None:
        req.write('<p>The document has moved <a href="%s">here</a></p>\n' % location)
    else:
        req.write(text)
    raise apache.SERVER_RETURN(apache.DONE)


def apply_fs_data(obj, fs, **args):
    """Call obj with the fields of fs that its signature names (all of them if it takes
    **kw), plus `args` (publisher passes req=req). A name given several times becomes a
    list. Names and values from a POSTed body are decoded (UTF-8) so that they match the
    signature (mod_python 3.5 on Python 3 drops them)."""
    import inspect
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return obj()
    params = sig.parameters
    takes_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
    values = {}
    for field in fs.list:
        name = field.name.decode("utf-8", "surrogateescape") if isinstance(field.name, bytes) else field.name
        if getattr(field, "filename", None):
            val = field
        else:
            val = field.value
            if isinstance(val, bytes):
                val = val.decode("utf-8", "surrogateescape")
        values.setdefault(name, []).append(val)
    for k, v in values.items():
        args.setdefault(k, v[0] if len(v) == 1 else v)
    if not takes_kw:
        args = {k: v for k, v in args.items()
                if k in params and params[k].kind in (params[k].POSITIONAL_OR_KEYWORD, params[k].KEYWORD_ONLY)}
    return obj(**args)
